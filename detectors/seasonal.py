"""Seasonal residual: compare each point with the same phase one period earlier.

The period is found from the data, not configured: once `warmup` points have arrived, the
autocorrelation of that stretch picks the strongest repeating lag (a daily cycle is 288 lags at
5-minute steps, 1440 at 1-minute). A series without a clear cycle gets no seasonal scores.
"""

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


def find_period(values: np.ndarray, *, min_period: int, max_period: int, min_acf: float) -> int:
    """The lag in [min_period, max_period] with the highest autocorrelation peak, or 0.

    Only peaks after the autocorrelation first drops below zero count, so the trivially high
    correlation of neighbouring points is not mistaken for a cycle; and a cycle repeats, so
    the autocorrelation at twice the lag must pass `min_acf` too (a lone echo does not).
    """
    x = values[~np.isnan(values)]
    if len(x) < 2 * min_period or np.ptp(x) == 0:
        return 0
    x = x - x.mean()
    size = 1 << (2 * len(x) - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[: len(x)]
    acf /= acf[0]
    below = np.flatnonzero(acf < 0)
    if not len(below):
        return 0
    lo, hi = max(min_period, int(below[0])), min(max_period, len(x) // 2)
    if lo >= hi:
        return 0
    lag = lo + int(np.argmax(acf[lo : hi + 1]))
    repeats = 2 * lag < len(x) and acf[2 * lag] >= min_acf
    return lag if acf[lag] >= min_acf and repeats else 0


class SeasonalDetector(CalibratedDetector):
    """Robust z-score of x[t] minus the seasonal profile: the median of the same phase over the
    last `seasons` periods (a median, so one past spike does not come back as an echo).

    Events in a cycle drift a little (a nightly job starts a few minutes late), so the profile
    is also read up to `jitter` x period points either side of the phase and the closest is
    kept: a step that comes a point late is not a surprise as large as the step itself.
    """

    name = "seasonal"

    def __init__(
        self,
        *,
        warmup: int = 1000,
        min_period: int = 4,
        max_period: int = 2016,
        min_acf: float = 0.3,
        seasons: int = 3,
        jitter: float = 0.01,
        window: int = 128,
        floor: float = 0.10,
        floor_basis: str = "above_low",
        **calibration: Any,
    ) -> None:
        super().__init__(**calibration)
        self.warmup = warmup
        self.min_period = min_period
        self.max_period = max_period
        self.min_acf = min_acf
        self.seasons = seasons
        self.jitter = jitter
        self.window = window
        self.floor = floor
        self.floor_basis = floor_basis

    def _validate_params(self) -> None:
        super()._validate_params()
        check_param("warmup", self.warmup, 2 * self.min_period)
        check_param("min_period", self.min_period, 2)
        check_param("max_period", self.max_period, self.min_period)
        check_param("min_acf", self.min_acf, 0.0, 1.0)
        check_param("seasons", self.seasons, 1)
        check_param("jitter", self.jitter, 0.0, 0.25)
        check_param("window", self.window, 16, 255)
        check_choice("floor_basis", self.floor_basis, BASES)

    def _reset(self) -> None:
        super()._reset()
        self.warm_: list[float] | None = []  # None once the warm-up is over
        self.period_ = 0
        self.drift_ = 0
        self.ring_ = np.zeros(
            0, np.float32
        )  # the last seasons x period + drift values (see the kernel)
        self.pushed_ = np.zeros(2)
        self.buffer_, self.order_, self.state_ = robust_window(self.window)

    def _raw(self, values: np.ndarray) -> np.ndarray:
        out = np.full(len(values), np.nan)
        start = 0
        if self.warm_ is not None:
            start = min(len(values), self.warmup - len(self.warm_))
            self.warm_.extend(values[:start].tolist())
            if len(self.warm_) == self.warmup:
                self._choose_period(np.asarray(self.warm_))
                self.warm_ = None
        rest = values[start:]
        if self.period_ and len(rest):
            out[start:] = self._robust_z(rest)
        return out

    def _robust_z(self, values: np.ndarray) -> np.ndarray:
        residuals = _kernels.seasonal_residual(
            values, self.ring_, self.pushed_, self.period_, self.seasons, self.drift_
        )
        return _kernels.robust_z(
            values,
            residuals,
            self.buffer_,
            self.order_,
            self.state_,
            self.floor,
            BASES.index(self.floor_basis),
        )

    def _choose_period(self, warm: np.ndarray) -> None:
        self.period_ = find_period(
            warm,
            min_period=self.min_period,
            max_period=min(self.max_period, self.warmup // 2),
            min_acf=self.min_acf,
        )
        if self.period_:
            # The jitter in points, below the period so that every phase read is in the past.
            self.drift_ = min(round(self.period_ * self.jitter), self.period_ - 1)
            self.ring_ = np.full(self.period_ * self.seasons + self.drift_, np.nan, np.float32)
            # Replay the warm-up through the residual and the calibration (scores discarded),
            # so the first scored point is judged against ~warmup points of memory, not none.
            self.calibration_.rarity_of(self._robust_z(warm))
