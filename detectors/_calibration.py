"""Per-series calibration shared by the univariate detectors: rarity, then novelty.

A raw surprise (a robust z, a residual ratio, a CUSUM sum) means different things on different
series. `Calibration` turns it into a rarity against the series' own memory and then keeps only
new highs (see `_kernels.rarity` and `_kernels.novelty`), so that scores of every series share
one scale and one alarm threshold.
"""

from __future__ import annotations

import numpy as np

from detectors import _kernels


def new_rarity_state() -> np.ndarray:
    state = np.zeros(_kernels.RARE_STATE)
    state[_kernels.RARE_GROWTH] = 1.0
    return state


class Calibration:
    """Mutable calibration state for one series; deep-copied with its detector."""

    def __init__(
        self, *, alpha: float, squash: float, mean_window: int, novelty_window: int, damping: float
    ) -> None:
        self.alpha, self.squash, self.damping = alpha, squash, damping
        self.rarity_state = new_rarity_state()
        self.point_counts = np.zeros(_kernels.RARE_BINS, np.float32)
        # A one-point mean is the point itself: no second histogram (see the kernel).
        self.mean_counts = np.zeros(_kernels.RARE_BINS if mean_window > 1 else 0, np.float32)
        self.ring = np.zeros(max(mean_window, 1), np.float32)
        self.recent = np.zeros(max(novelty_window, 1), np.float32)
        self.novelty_state = np.zeros(4)

    def rarity_of(self, raw: np.ndarray) -> np.ndarray:
        return _kernels.rarity(
            raw,
            self.rarity_state,
            self.point_counts,
            self.mean_counts,
            self.ring,
            self.alpha,
            self.squash,
        )

    def novel(self, scores: np.ndarray) -> np.ndarray:
        return _kernels.novelty(scores, self.recent, self.novelty_state, self.damping)
