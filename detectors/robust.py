"""Robust rolling z-score: distance from the rolling median in units of the rolling MAD."""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors import _kernels
from detectors.base import (
    BASES,
    CalibratedDetector,
    check_choice,
    check_param,
    robust_window,
)


class RobustZScoreDetector(CalibratedDetector):
    """|x - median(last `window`)| / (1.4826 MAD), floored at `floor` x the series' scale.

    Median and MAD ignore the spikes they are looking for, unlike mean and standard deviation.
    The floor is a minimum effect size: a deviation under 10% of the series' scale is not an
    anomaly however quiet the series is (a flat stretch has MAD 0, and the smallest wiggle
    would otherwise be infinitely surprising). The scale (`floor_basis`) is how far the
    series' long-run mean sits above its lowest value ("above_low", the same whatever the
    offset), its range ("range"), or its long-run mean |x| ("level", the former default,
    which hides changes on a series with a large offset).
    """

    name = "robust_zscore"

    def __init__(
        self,
        *,
        window: int = 128,
        floor: float = 0.10,
        floor_basis: str = "above_low",
        **calibration: Any,
    ) -> None:
        super().__init__(**calibration)
        self.window = window
        self.floor = floor
        self.floor_basis = floor_basis

    def _validate_params(self) -> None:
        super()._validate_params()
        check_param("window", self.window, 16, 255)
        check_choice("floor_basis", self.floor_basis, BASES)
        check_param("floor", self.floor, 0.0)

    def _reset(self) -> None:
        super()._reset()
        self.buffer_, self.order_, self.state_ = robust_window(self.window)

    def _raw(self, values: np.ndarray) -> np.ndarray:
        return _kernels.robust_z(
            values,
            values,
            self.buffer_,
            self.order_,
            self.state_,
            self.floor,
            BASES.index(self.floor_basis),
        )
