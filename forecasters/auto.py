"""`auto` (the default): the best few candidates blended by their backtest, guarded by naive.

1. Every candidate is backtested on the series' own history (same origins, same horizon).
   A candidate whose errors equal an earlier one's (a weekly variant on a history too short
   for weeks) is the same forecast and counts once.
2. They are ranked by their mean absolute error over the most recent `RANK_ORIGINS` origins
   (recent behaviour predicts the next day better than behaviour weeks ago), and the best
   `top` are blended with weights proportional to 1 / error^2. A blend is linear, so its
   backtest errors are the same blend of theirs: its MASE and its conformal bands come from
   those, like any model's.
3. The guard: the blend is served only when the backtest made `MIN_ORIGINS` origins or
   more, and over them beats seasonal naive's error on the same cuts, at half of them or
   more too. Otherwise seasonal
   naive is served and the forecast says why (`guard`): on a series that repeats itself
   almost exactly, anything but naive is noise.

Candidates are registry names or mappings `{"model": name, **params}`; statsmodels' `ets`
and `mstl` and `prophet` are candidates a user can name (slower, and not better on M4
hourly: docs/benchmarks.md). Where each constant came from is said beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Self

import numpy as np
import pandas as pd

from controlplane.domain.errors import InvalidInputError
from controlplane.domain.registry import instantiate
from controlplane.domain.series import MetricSeries
from forecasters.base import (
    LEVELS,
    ORIGINS,
    BaseForecaster,
    Forecast,
    SeasonalNaive,
    as_series,
    summarize,
)
from forecasters.models import MODELS

Candidate = str | Mapping[str, Any]

#: Cheap, complementary views (published forms: seasonal naive and its weekly version, a
#: robust seasonal profile, damped Holt-Winters; each also multiplicative through the log).
#: Chosen on M4 hourly (issue 16's half/half protocol) over statsmodels' ETS and MSTL and
#: statsforecast's AutoETS, AutoTheta and MSTL: docs/benchmarks.md.
DEFAULT_CANDIDATES: tuple[Candidate, ...] = (
    "seasonal_naive",
    {"model": "seasonal_naive", "season": "week"},
    "seasonal_profile",
    {"model": "seasonal_profile", "log": True},
    "holt_winters",
    {"model": "holt_winters", "log": True},
    {"model": "holt_winters", "season": "week"},
)
#: Candidates blended (chosen on M4 hourly: 1, 2, 3 and 7 tried; 3 best on either half).
TOP = 3
#: Most recent origins the ranking reads (chosen on M4 hourly: all 5, the last 3 and the
#: median of 5 tried; the last 3 halve the worst series' ratio to naive on either half).
RANK_ORIGINS = 3
#: Backtest origins a blend needs before it can be served instead of seasonal naive (derived:
#: "beats naive at half the origins" means little on one or two; NAB's 4-day series, whose
#: one-origin blend was 3.6 times worse than naive, showed it).
MIN_ORIGINS = 3


def label(candidate: Candidate) -> str:
    """`holt_winters(log=True)`: the name and its parameters, as scores and blends show it."""
    if isinstance(candidate, str):
        return candidate
    params = ", ".join(f"{k}={v}" for k, v in candidate.items() if k != "model")
    return f"{candidate.get('model')}({params})" if params else str(candidate.get("model"))


class AutoForecaster(BaseForecaster):
    name = "auto"

    def __init__(
        self,
        *,
        candidates: Sequence[Candidate] = DEFAULT_CANDIDATES,
        origins: int = ORIGINS,
        periods: list[int] | None = None,
        top: int = TOP,
        guard: bool = True,
    ) -> None:
        super().__init__(origins=origins, periods=periods)
        self.candidates = tuple(candidates)
        self.top = top
        self.guard = guard
        self._models()  # bad parameters are named now (at start-up), not at the first fit

    def fit(self, series: MetricSeries | pd.Series, horizon: int | None = None) -> Self:
        models = self._models()
        data = as_series(series)
        for model in models.values():
            model.prepare(data, horizon)
            model.backtest()
        naive = models.get(SeasonalNaive.name)
        if naive is None:
            naive = self._naive(data, horizon)
        self.scores_ = {
            key: model.backtest_.mase
            for key, model in models.items()
            if model.fallback_ is None and model.backtest_ is not None
        }
        self.grid_ = naive.grid_
        self.guard_: str | None = None
        self.members_: dict[str, tuple[BaseForecaster, float]] = {}
        ranked = self._ranked(models)
        if not ranked:  # too short to backtest: the first candidate, as it can
            self.served_ = next(iter(models.values()))
            self.served_.fit_history()
            return self
        for key in ranked[: self.top]:
            models[key].fit_history()
        fitted = {k: models[k] for k in ranked[: self.top] if models[k].fallback_ is None}
        if not fitted:  # every leader failed on the whole history
            naive.fit_history()
            fitted = {SeasonalNaive.name: naive}
            self.recent_.setdefault(SeasonalNaive.name, 1.0)
        self._blend(fitted, naive)
        return self

    def _models(self) -> dict[str, BaseForecaster]:
        """One fresh model per candidate, keyed by its label; errors name the bad entry."""
        if isinstance(self.top, bool) or not isinstance(self.top, int) or self.top < 1:
            raise InvalidInputError(f"top must be an integer >= 1, got {self.top!r}")
        if not self.candidates:
            raise InvalidInputError("candidates must not be empty")
        models: dict[str, BaseForecaster] = {}
        for candidate in self.candidates:
            if isinstance(candidate, str):
                name, params = candidate, {}
            elif isinstance(candidate, Mapping) and isinstance(candidate.get("model"), str):
                name = str(candidate["model"])
                params = {k: v for k, v in candidate.items() if k != "model"}
            else:
                raise InvalidInputError(
                    f"candidates: each must be a model name or {{model: name, ...}}, "
                    f"got {candidate!r}"
                )
            if name not in MODELS:
                raise InvalidInputError(
                    f"candidates must be names from {sorted(MODELS)}, got {name!r}"
                )
            params = {"origins": self.origins, "periods": self.periods, **params}
            models[label(candidate)] = instantiate(MODELS, "candidate", name, params)
        return models

    def _naive(self, data: MetricSeries, horizon: int | None) -> BaseForecaster:
        naive = SeasonalNaive(origins=self.origins, periods=self.periods)
        naive.prepare(data, horizon)
        naive.backtest()
        return naive

    def _ranked(self, models: dict[str, BaseForecaster]) -> list[str]:
        """Backtested candidates, best first by recent error; duplicates of a better one out."""
        backtested = {
            k: m.errors_ for k, m in models.items() if m.fallback_ is None and m.errors_ is not None
        }
        self.recent_: dict[str, float] = {}
        if not backtested:
            return []
        shared = min(len(e) for e in backtested.values())
        window = min(shared, RANK_ORIGINS)
        self.recent_ = {k: float(np.abs(e[-window:]).mean()) for k, e in backtested.items()}
        ranked: list[str] = []
        for key in sorted(backtested, key=lambda k: self.recent_[k]):
            errors = backtested[key][-shared:]
            if not any(np.array_equal(errors, backtested[o][-shared:]) for o in ranked):
                ranked.append(key)
        return ranked

    def _blend(self, members: dict[str, BaseForecaster], naive: BaseForecaster) -> None:
        """Weights, the blend's backtest errors and record, then the guard."""
        shared = min(len(m.errors_) for m in members.values() if m.errors_ is not None)
        raw = {k: 1.0 / max(self.recent_[k], 1e-12) ** 2 for k in members}
        weights = {k: w / sum(raw.values()) for k, w in raw.items()}
        first = next(iter(members.values()))
        errors = np.zeros((shared, first.horizon_))
        for key, model in members.items():
            errors += weights[key] * model.errors_[-shared:]  # type: ignore[index]
        self.errors_ = errors
        self.backtest_ = summarize(first.grid_.values, errors, first.season_)
        self.periods_, self.season_ = first.periods_, first.season_
        self.nonnegative_, self.fallback_ = first.nonnegative_, None
        self.members_ = {k: (m, weights[k]) for k, m in members.items()}
        if self.guard and naive.errors_ is not None:
            self.guard_ = _guard(errors, naive.errors_[-shared:])
            if self.guard_ is not None:
                naive.fit_history()
                self.members_ = {SeasonalNaive.name: (naive, 1.0)}
                self.errors_, self.backtest_ = naive.errors_, naive.backtest_

    def predict(self, horizon: int, levels: Sequence[int] = LEVELS) -> Forecast:
        self._check_fitted()
        if not self.members_:
            forecast = self.served_.predict(horizon, levels)
            return replace(forecast, candidates=dict(self.scores_))
        if len(self.members_) == 1:
            ((key, (model, _)),) = self.members_.items()
            forecast = model.predict(horizon, levels)
            return replace(forecast, model=key, candidates=dict(self.scores_), guard=self.guard_)
        mean = np.zeros(horizon)
        for model, weight in self.members_.values():
            mean += weight * model.predict(horizon, levels).mean
        blended = self._forecast(mean, horizon, tuple(sorted(levels)))
        return replace(
            blended,
            model="blend",
            candidates=dict(self.scores_),
            weights={k: w for k, (_, w) in self.members_.items()},
        )

    def _fit(self, values: np.ndarray) -> None:  # pragma: no cover - fit is overridden
        raise NotImplementedError

    def _predict(self, horizon: int) -> np.ndarray:  # pragma: no cover - predict is overridden
        raise NotImplementedError


def _guard(errors: np.ndarray, naive: np.ndarray) -> str | None:
    """Why seasonal naive must be served instead of a blend with these backtest errors."""
    blend, plain = np.abs(errors).mean(axis=1), np.abs(naive).mean(axis=1)
    if len(blend) < MIN_ORIGINS:
        return (
            f"seasonal naive served: {len(blend)} backtest origin(s) are too few to trust "
            f"a model over it (it takes {MIN_ORIGINS})"
        )
    if blend.mean() >= plain.mean():
        return (
            f"seasonal naive served: the model's backtest error {blend.mean():.4g} is not "
            f"below seasonal naive's {plain.mean():.4g}"
        )
    wins = int((blend < plain).sum())
    if 2 * wins < len(blend):
        return (
            f"seasonal naive served: the model beat it at {wins} of {len(blend)} backtest "
            "origins only"
        )
    return None
