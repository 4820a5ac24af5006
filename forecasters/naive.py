"""Seasonal naive: tomorrow looks like today. The baseline, and the fallback of every model."""

from __future__ import annotations

import numpy as np

from forecasters.base import BaseForecaster


class SeasonalNaive(BaseForecaster):
    """Repeats the last season (one day of steps when two days of history exist, else the
    last value). Always available: it needs two points and cannot blow up."""

    name = "seasonal_naive"

    def _fit(self, values: np.ndarray) -> None:
        self.lag_ = self.season_ if len(values) >= self.season_ else 1
        self.last_ = values[-self.lag_ :].copy()

    def _predict(self, horizon: int) -> np.ndarray:
        return np.resize(self.last_, horizon)
