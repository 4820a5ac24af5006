"""`auto` (the default): the candidate with the lowest rolling-origin backtest MASE wins
(`combine="median"`: the median of the candidates' forecasts is served instead).

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
from forecasters._grid import mase_scale
from forecasters.base import LEVELS, ORIGINS, Backtest, BaseForecaster, Forecast, as_series, smape
from forecasters.models import MODELS

DEFAULT_CANDIDATES = ("seasonal_naive", "seasonal_profile", "ets", "mstl")
#: "best": the lowest backtest MASE is served; "median": the median of every candidate that
#: fitted, with intervals from the median's own backtest errors (docs/benchmarks.md, M4).
COMBINE = ("best", "median")


class AutoForecaster(BaseForecaster):
    name = "auto"

    def __init__(
        self,
        *,
        candidates: Sequence[str] = DEFAULT_CANDIDATES,
        origins: int = ORIGINS,
        periods: list[int] | None = None,
        combine: str = "best",
    ) -> None:
        super().__init__(origins=origins, periods=periods)
        self.candidates = tuple(candidates)
        self.combine = combine

    def fit(self, series: MetricSeries | pd.Series, horizon: int | None = None) -> Self:
        if self.combine not in COMBINE:
            raise InvalidInputError(f"combine must be one of {COMBINE}, got {self.combine!r}")
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
        self.grid_ = self.winner_.grid_
        self.members_: list[BaseForecaster] = []
        if self.combine == "median":
            self._combine(models)
        if not self.members_ and self.winner_.fallback_ is None:
            self.winner_.fit_history()  # only the winner is fitted on the whole history
        return self

    def _combine(self, models: list[BaseForecaster]) -> None:
        """Fit every candidate that backtested, and backtest their median from their errors
        (at each cut, actual - median(means) = median(actual - means))."""
        backtested = [m for m in models if m.fallback_ is None and m.errors_ is not None]
        for model in backtested:
            model.fit_history()
        members = [m for m in backtested if m.fallback_ is None]
        if len(members) < 2:
            return
        shared = min(len(m.errors_) for m in members if m.errors_ is not None)
        errors = np.median([m.errors_[-shared:] for m in members if m.errors_ is not None], axis=0)
        first = members[0]
        values, h, season = self.grid_.values, errors.shape[1], first.season_
        cuts = [len(values) - k * h for k in range(shared, 0, -1)]
        mases, smapes = [], []
        for cut, error in zip(cuts, errors, strict=True):
            actual = values[cut : cut + h]
            mases.append(float(np.abs(error).mean()) / mase_scale(values[:cut], season))
            smapes.append(smape(actual, actual - error))
        self.members_, self.errors_ = members, errors
        self.backtest_ = Backtest(float(np.mean(mases)), float(np.mean(smapes)), shared, h)
        self.periods_, self.season_ = first.periods_, season
        self.nonnegative_, self.fallback_ = first.nonnegative_, None

    def predict(self, horizon: int, levels: Sequence[int] = LEVELS) -> Forecast:
        self._check_fitted()
        if self.members_:
            means = [m.predict(horizon, levels).mean for m in self.members_]
            combined = self._forecast(np.median(means, axis=0), horizon, tuple(sorted(levels)))
            names = "+".join(m.name for m in self.members_)
            return replace(combined, model=f"median({names})", candidates=dict(self.scores_))
        forecast = self.winner_.predict(horizon, levels)
        return replace(forecast, candidates=dict(self.scores_))

    def _fit(self, values: np.ndarray) -> None:  # pragma: no cover - fit is overridden
        raise NotImplementedError

    def _predict(self, horizon: int) -> np.ndarray:  # pragma: no cover - predict is overridden
        raise NotImplementedError
