"""Holt-Winters / EWMA forecast residual: how far a point lands from the one-step forecast."""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors import _kernels
from detectors.base import CalibratedDetector, check_param


class HoltWintersDetector(CalibratedDetector):
    """Holt's linear smoothing (level `alpha`, trend `beta`; `beta=0` is plain EWMA).

    The residual is divided by the exponentially weighted mean absolute residual, so a noisy
    series needs a proportionally larger miss to look anomalous.
    """

    name = "holt_winters"

    def __init__(self, *, alpha: float = 0.1, beta: float = 0.01, **calibration: Any) -> None:
        super().__init__(**calibration)
        self.alpha = alpha
        self.beta = beta

    def _validate_params(self) -> None:
        super()._validate_params()
        check_param("alpha", self.alpha, 1e-6, 1.0)
        check_param("beta", self.beta, 0.0, 1.0)

    def _reset(self) -> None:
        super()._reset()
        self.state_ = np.zeros(4)

    def _raw(self, values: np.ndarray) -> np.ndarray:
        return _kernels.holt_residual(values, self.state_, self.alpha, self.beta)
