"""Per-series calibration shared by the univariate detectors: likelihood, then novelty.

A raw surprise (a robust z, a residual ratio, a CUSUM sum) means different things on different
series. `Calibration` turns it into a likelihood against the series' own history and then
keeps only new highs (see `_kernels.calibrate` and `_kernels.novelty`), so that scores of every
series share one scale and one alarm threshold.
"""

from __future__ import annotations

import numpy as np

from detectors import _kernels


class Calibration:
    """Mutable calibration state for one series; deep-copied with its detector."""

    def __init__(self, *, alpha: float, squash: float, novelty_window: int, damping: float) -> None:
        self.alpha, self.squash, self.damping = alpha, squash, damping
        self.likelihood = np.zeros(_kernels.CAL_STATE)
        self.likelihood[_kernels.CAL_VAR] = 1.0
        self.recent = np.zeros(max(novelty_window, 1))
        self.novelty_state = np.zeros(2)

    def likelihood_of(self, raw: np.ndarray) -> np.ndarray:
        return _kernels.calibrate(raw, self.likelihood, self.alpha, self.squash)

    def novel(self, scores: np.ndarray) -> np.ndarray:
        return _kernels.novelty(scores, self.recent, self.novelty_state, self.damping)
