"""Level shift / change point: two-sided CUSUM against a slowly adapting baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors import _kernels
from detectors.base import CalibratedDetector, check_param


class CusumDetector(CalibratedDetector):
    """Page's CUSUM: sums standardised deviations beyond `drift`; a shift makes the sum climb.

    The baseline adapts at `rate`, so after a lasting shift the new level becomes normal and
    the sums drain away instead of alarming forever. A `drift` of 1 targets shifts of about
    two mean absolute deviations (Page's k = shift / 2) and lets noise drain the sums quickly.
    """

    name = "cusum"
    averages_bursts = False  # the sum already accumulates

    def __init__(self, *, drift: float = 1.0, rate: float = 0.01, **calibration: Any) -> None:
        super().__init__(**calibration)
        self.drift = drift
        self.rate = rate

    def _validate_params(self) -> None:
        super()._validate_params()
        check_param("drift", self.drift, 0.0)
        check_param("rate", self.rate, 1e-6, 1.0)

    def _reset(self) -> None:
        super()._reset()
        self.state_ = np.zeros(5)

    def _raw(self, values: np.ndarray) -> np.ndarray:
        return _kernels.cusum(values, self.state_, self.drift, self.rate)
