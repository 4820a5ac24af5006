"""`auto` (the default): the candidate with the lowest rolling-origin backtest MASE wins.

Every candidate is backtested on the series' own history (same origins, same horizon); the
winner's forecast carries its backtest error and every candidate's score, so a report can say
why it trusts the line it draws. Prophet is not a default candidate: it costs ~50x seasonal
naive per fit and does not win on these series (see docs/benchmarks.md); name it in
`candidates` to include it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Self

import numpy as np
import pandas as pd

from controlplane.domain.errors import InvalidInputError
from controlplane.domain.series import MetricSeries
from forecasters.base import LEVELS, BaseForecaster, Forecast, as_series
from forecasters.models import MODELS

DEFAULT_CANDIDATES = ("seasonal_naive", "seasonal_profile", "ets", "mstl")


class AutoForecaster(BaseForecaster):
    name = "auto"

    def __init__(
        self,
        *,
        candidates: Sequence[str] = DEFAULT_CANDIDATES,
        origins: int = 3,
        periods: list[int] | None = None,
    ) -> None:
        super().__init__(origins=origins, periods=periods)
        self.candidates = tuple(candidates)

    def fit(self, series: MetricSeries | pd.Series, horizon: int | None = None) -> Self:
        unknown = [c for c in self.candidates if c not in MODELS]
        if unknown or not self.candidates:
            raise InvalidInputError(
                f"candidates must be names from {sorted(MODELS)}, got {list(self.candidates)!r}"
            )
        data = as_series(series)
        models = [
            MODELS[name](origins=self.origins, periods=self.periods) for name in self.candidates
        ]
        for model in models:
            model.prepare(data, horizon)
            model.backtest()
        self.scores_ = {
            model.name: model.backtest_.mase
            for model in models
            if model.fallback_ is None and model.backtest_ is not None
        }
        self.winner_ = min(
            models, key=lambda m: self.scores_.get(m.name, np.inf) if self.scores_ else 0.0
        )
        if self.winner_.fallback_ is None:  # only the winner is fitted on the whole history
            self.winner_.fit_history()
        self.grid_ = self.winner_.grid_
        return self

    def predict(self, horizon: int, levels: Sequence[int] = LEVELS) -> Forecast:
        self._check_fitted()
        forecast = self.winner_.predict(horizon, levels)
        return replace(forecast, candidates=dict(self.scores_))

    def _fit(self, values: np.ndarray) -> None:  # pragma: no cover - fit is overridden
        raise NotImplementedError

    def _predict(self, horizon: int) -> np.ndarray:  # pragma: no cover - predict is overridden
        raise NotImplementedError
