"""Seasonal profile: the robust shape of recent days on the current level.

The last `seasons` days (one season = one day of steps; `season="week"`: weeks) are lined
up; each day's median is its level, and the median over days of the value minus its day's
level, phase by phase, is the profile. The forecast is the last day's level plus the profile.
Medians make it immune to the spikes that dominate CPU, traffic and bidding series, where
repeating yesterday (seasonal naive) repeats yesterday's noise.
"""

from __future__ import annotations

import numpy as np

from forecasters.base import ORIGINS, BaseForecaster


class SeasonalProfile(BaseForecaster):
    name = "seasonal_profile"

    def __init__(
        self,
        *,
        seasons: int = 7,
        season: str = "day",
        log: bool = False,
        origins: int = ORIGINS,
        periods: list[int] | None = None,
    ) -> None:
        super().__init__(origins=origins, periods=periods, log=log)
        self.seasons = seasons
        self.season = season

    def _fit(self, values: np.ndarray) -> None:
        if self.seasons < 1:
            raise ValueError(f"seasons must be >= 1, got {self.seasons!r}")
        period = self._period(self.season, len(values), seasons=2)
        if period == 1:  # no full season: a robust level
            self.profile_ = np.zeros(1)
            self.level_ = float(np.median(values[-min(len(values), 48) :]))
            return
        days = min(self.seasons, len(values) // period)
        recent = values[len(values) - days * period :].reshape(days, period)
        levels = np.median(recent, axis=1)
        self.profile_ = np.median(recent - levels[:, None], axis=0)
        self.level_ = float(levels[-1])

    def _predict(self, horizon: int) -> np.ndarray:
        return self.level_ + np.resize(self.profile_, horizon)
