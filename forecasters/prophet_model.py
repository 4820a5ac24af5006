"""Prophet (Meta): piecewise-linear trend plus Fourier daily and weekly seasonality.

Fitted with Stan through cmdstanpy (the wheel ships the compiled model). Seasonalities follow
the periods detected in the data; intervals come from the shared backtest calibration, so
Prophet's own uncertainty sampling is switched off (it is slow and under-covers).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from forecasters._grid import DAY, WEEK
from forecasters.base import BaseForecaster


def _quiet() -> None:
    """cmdstanpy sets its logger to INFO when first imported (one line per Stan run), and
    prophet logs an error at import when the optional plotly is missing."""
    for noisy in ("cmdstanpy", "prophet", "prophet.plot"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)


class ProphetForecaster(BaseForecaster):
    name = "prophet"
    min_points = 10

    def _fit(self, values: np.ndarray) -> None:
        _quiet()
        from prophet import Prophet

        _quiet()
        step = self.grid_.step_seconds
        spans = {round(p * step) for p in self.periods_}
        self.model_ = Prophet(
            daily_seasonality=DAY in spans,
            weekly_seasonality=WEEK in spans,
            yearly_seasonality=False,
            uncertainty_samples=0,
        )
        stamps = self.grid_.start + self.grid_.step * np.arange(len(values))
        self.model_.fit(pd.DataFrame({"ds": pd.DatetimeIndex(stamps), "y": values}))
        self.last_ = stamps[-1]

    def _predict(self, horizon: int) -> np.ndarray:
        future = self.last_ + self.grid_.step * np.arange(1, horizon + 1)
        frame = self.model_.predict(pd.DataFrame({"ds": pd.DatetimeIndex(future)}))
        return frame["yhat"].to_numpy(dtype=np.float64)
