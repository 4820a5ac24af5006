"""Robust rolling z-score: distance from the rolling median in units of the rolling MAD."""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors import _kernels
from detectors.base import CalibratedDetector, check_param


class RobustZScoreDetector(CalibratedDetector):
    """|x - median(last `window`)| / (1.4826 MAD), floored at `floor` x the series' typical |x|.

    Median and MAD ignore the spikes they are looking for, unlike mean and standard deviation.
    The floor is a minimum effect size: a deviation under 5% of the series' typical level is
    not an anomaly however quiet the series is (a flat stretch has MAD 0, and the smallest
    wiggle would otherwise be infinitely surprising). 5%, as the ensemble's range tolerance.
    """

    name = "robust_zscore"

    def __init__(self, *, window: int = 128, floor: float = 0.05, **calibration: Any) -> None:
        super().__init__(**calibration)
        self.window = window
        self.floor = floor

    def _validate_params(self) -> None:
        super()._validate_params()
        check_param("window", self.window, 16)
        check_param("floor", self.floor, 0.0)

    def _reset(self) -> None:
        super()._reset()
        self.buffer_ = np.zeros(self.window)
        self.state_ = np.zeros(4)

    def _raw(self, values: np.ndarray) -> np.ndarray:
        return _kernels.rolling_robust_z(values, values, self.buffer_, self.state_, self.floor)
