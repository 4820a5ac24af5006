"""ETS / Holt-Winters (statsmodels): additive damped trend and additive daily seasonality.

The damped trend keeps long horizons from running away; the base class refuses non-finite or
absurd forecasts, so a numerical blow-up becomes a seasonal-naive forecast, not a wild line.
"""

from __future__ import annotations

import numpy as np

from forecasters.base import ORIGINS, BaseForecaster


class ExponentialSmoothingForecaster(BaseForecaster):
    """statsmodels `ExponentialSmoothing` with heuristic initial states (4 parameters fitted),
    seasonal on the shortest detected period when two full seasons are in the history."""

    name = "ets"
    min_points = 10

    def __init__(
        self,
        *,
        damped: bool = True,
        origins: int = ORIGINS,
        periods: list[int] | None = None,
        log: bool = False,
    ) -> None:
        super().__init__(origins=origins, periods=periods, log=log)
        self.damped = damped

    def _fit(self, values: np.ndarray) -> None:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        period = next((p for p in self.periods_ if len(values) >= 2 * p + 10), None)
        model = ExponentialSmoothing(
            values,
            trend="add",
            damped_trend=self.damped,
            seasonal="add" if period else None,
            seasonal_periods=period,
            initialization_method="heuristic" if period else "estimated",
        )
        # least_squares: the lowest SSE of the optimizers tried, and faster than L-BFGS-B.
        self.result_ = model.fit(use_brute=False, method="least_squares")

    def _predict(self, horizon: int) -> np.ndarray:
        return np.asarray(self.result_.forecast(horizon), dtype=np.float64)
