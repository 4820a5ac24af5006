"""`BaseForecaster` and `Forecast`: the contract every forecaster follows.

- `fit(series, horizon=None)` puts the series on its regular grid (see `_grid`), detects the
  seasonal periods, runs a rolling-origin backtest of the model on the series' own history
  (`origins` cuts, `horizon` steps each, default one day), then fits the whole history.
- `predict(horizon, levels=(80, 95))` returns a `Forecast` on the next `horizon` grid steps.

Intervals are the same for every model: mean +- the split-conformal quantile of the model's
own absolute backtest errors at each lead time (pooled over neighbouring leads), widened by
sqrt(h/H) past the backtested horizon H. They are calibrated on the series itself, whatever
the model. A model that fails or blows up (non-finite or absurd values) is replaced by seasonal
naive, and the forecast says so in `fallback`.

Every model takes `log=True` (fit on the log scale when the series is positive: seasons and
trends multiply). A backtest's record (`Backtest`) carries seasonal naive's MASE on the same
cuts and the cross-conformal coverage of the bands: the forecast's own accuracy, which the
API, the report and the console show beside it.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from controlplane.domain.errors import InvalidInputError, NotFittedError
from controlplane.domain.series import MetricSeries
from forecasters._grid import Grid, detect_periods, mase_scale, regularize, season_of

LEVELS = (80, 95)
#: Rolling-origin cuts a backtest makes. Chosen on M4 hourly's test parts (3 and 5 tried: with
#: 3 the conformal bands covered 89.5 / 76.5% of the test values, with 5 94.6 / 79.1%, and
#: the same on either half of the series, so a choice on one half holds on the other);
#: docs/benchmarks.md.
ORIGINS = 5
#: A forecast further than this many history ranges from the history is a numerical blow-up.
BLOW_UP_RANGES = 10.0
#: Leads pooled around each lead when taking error quantiles (fraction of the horizon).
POOL_FRACTION = 0.125
#: Seasons a model can repeat, in days.
SEASONS = {"day": 1, "week": 7}


class ModelFailedError(InvalidInputError):
    """A model could not fit this series or produced absurd values; seasonal naive takes over."""


@dataclass(frozen=True)
class Backtest:
    """Rolling-origin accuracy of a model on the series' own history, beside seasonal naive's
    on the same origins, and how often its bands held the backtest's values (each origin
    judged by bands calibrated on the other origins: cross-conformal, so not in-sample)."""

    mase: float
    smape: float
    origins: int
    horizon: int
    naive_mase: float
    coverage: dict[int, float] = field(default_factory=dict)

    @property
    def relative(self) -> float:
        """MASE over seasonal naive's on the same origins (< 1: better than naive)."""
        return self.mase / self.naive_mase if self.naive_mase > 0 else math.inf

    def describe(self) -> str:
        """The forecast's own accuracy in words, as every surface shows it beside the line."""
        relative = f"{self.relative:.2f}x" if math.isfinite(self.relative) else "unbounded vs"
        text = (
            f"backtest error {relative} seasonal naive's (MASE {self.mase:.2f} against "
            f"{self.naive_mase:.2f}, {self.origins} origins of {self.horizon} steps)"
        )
        if self.coverage:
            levels = sorted(self.coverage)
            held = " / ".join(f"{100 * self.coverage[level]:.0f}%" for level in levels)
            names = " / ".join(f"{level}%" for level in levels)
            text += f"; its {names} bands held {held} of backtest values"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "mase": round(self.mase, 4),
            "smape": round(self.smape, 3),
            "origins": self.origins,
            "horizon": self.horizon,
            "naive_mase": round(self.naive_mase, 4),
            "relative_mase": round(self.relative, 4) if math.isfinite(self.relative) else None,
            "coverage": {str(level): round(share, 4) for level, share in self.coverage.items()},
        }


@dataclass(frozen=True)
class Forecast:
    """Mean and central prediction intervals on future timestamps (datetime64[ns], UTC)."""

    timestamps: np.ndarray
    mean: np.ndarray
    bands: dict[int, tuple[np.ndarray, np.ndarray]]
    model: str
    step_seconds: float
    periods: tuple[int, ...] = ()
    backtest: Backtest | None = None
    fallback: str | None = None
    candidates: dict[str, float] = field(default_factory=dict)
    #: The blended models and their weights (`auto`), and why seasonal naive was served.
    weights: dict[str, float] = field(default_factory=dict)
    guard: str | None = None

    def __len__(self) -> int:
        return len(self.mean)

    def lo(self, level: int) -> np.ndarray:
        return self.bands[level][0]

    def hi(self, level: int) -> np.ndarray:
        return self.bands[level][1]

    def frame(self) -> pd.DataFrame:
        """timestamp, mean, lo-80, hi-80, lo-95, hi-95 (one column pair per level)."""
        columns: dict[str, Any] = {"timestamp": self.timestamps, "mean": self.mean}
        for level in sorted(self.bands):
            columns[f"lo-{level}"], columns[f"hi-{level}"] = self.bands[level]
        return pd.DataFrame(columns)

    def summary(self) -> dict[str, Any]:
        """What was forecast and how: the model, why it was chosen, its backtest error."""
        return {
            "model": self.model,
            "step_seconds": self.step_seconds,
            "periods": list(self.periods),
            "backtest": self.backtest.as_dict() if self.backtest else None,
            "accuracy": self.backtest.describe() if self.backtest else None,
            "fallback": self.fallback,
            "guard": self.guard,
            "candidates": {k: round(v, 4) for k, v in self.candidates.items()},
            "weights": {k: round(v, 4) for k, v in self.weights.items()},
        }


def as_series(data: MetricSeries | pd.Series) -> MetricSeries:
    """Accept a `MetricSeries` or a pandas Series indexed by timestamps."""
    if isinstance(data, MetricSeries):
        return data
    if isinstance(data, pd.Series):
        try:
            index = pd.DatetimeIndex(data.index)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"series index must be timestamps: {exc}") from None
        if index.tz is not None:
            index = index.tz_convert("UTC").tz_localize(None)
        values = pd.to_numeric(data, errors="coerce").to_numpy(dtype=np.float64)
        return MetricSeries(str(data.name or "series"), index.to_numpy("datetime64[ns]"), values)
    raise InvalidInputError(f"expected a MetricSeries or pandas Series, got {type(data).__name__}")


def check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    chosen = tuple(sorted({int(level) for level in levels}))
    if not chosen or any(not 0 < level < 100 for level in chosen):
        raise InvalidInputError(f"levels must be percentages in (0, 100), got {list(levels)!r}")
    return chosen


class BaseForecaster(ABC):
    """Validated fit/predict with backtest-calibrated intervals and a seasonal-naive fallback."""

    name: ClassVar[str]
    #: Grid points a model needs to fit at all (fewer: seasonal naive takes over).
    min_points: ClassVar[int] = 2

    def __init__(
        self, *, origins: int = ORIGINS, periods: Sequence[int] | None = None, log: bool = False
    ) -> None:
        self.origins = origins
        self.periods = periods
        self.log = log

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # -- public surface -----------------------------------------------------------------
    def fit(self, series: MetricSeries | pd.Series, horizon: int | None = None) -> Self:
        """Backtest on the history, then fit all of it. `horizon`: steps the backtest checks."""
        self.prepare(series, horizon)
        if self.backtest():
            self.fit_history()
        return self

    def prepare(self, series: MetricSeries | pd.Series, horizon: int | None = None) -> None:
        """Validate the series onto its grid and detect its seasons (the first step of fit)."""
        if self.origins < 0:
            raise InvalidInputError(f"origins must be >= 0, got {self.origins!r}")
        season = getattr(self, "season", "day")
        if season not in SEASONS:
            raise InvalidInputError(f"season must be one of {sorted(SEASONS)}, got {season!r}")
        grid = regularize(as_series(series))
        self.grid_ = grid
        self.periods_ = self._periods(grid)
        self.season_ = season_of(grid)
        self.nonnegative_ = bool(grid.values.min() >= 0)
        default = self.season_ if self.season_ > 1 else max(1, len(grid.values) // 10)
        self.horizon_ = int(horizon or default)
        if self.horizon_ < 1:
            raise InvalidInputError(f"horizon must be >= 1, got {horizon!r}")
        self.fallback_: str | None = None
        self.errors_: np.ndarray | None = None
        self.backtest_: Backtest | None = None

    def backtest(self) -> bool:
        """Rolling-origin backtest (second step); False when the model failed and fell back."""
        try:
            self.errors_, self.backtest_ = self._backtest(self.grid_)
        except ModelFailedError as exc:
            self._fall_back(str(exc))
            return False
        return True

    def fit_history(self) -> None:
        """Fit the whole history (last step; `auto` does it for the winner only)."""
        try:
            self._fit_checked(self.grid_.values)
        except ModelFailedError as exc:
            self._fall_back(str(exc))

    def predict(self, horizon: int, levels: Sequence[int] = LEVELS) -> Forecast:
        self._check_fitted()
        if int(horizon) < 1:
            raise InvalidInputError(f"horizon must be >= 1, got {horizon!r}")
        horizon = int(horizon)
        chosen = check_levels(levels)
        if self.fallback_ is not None:
            return self._fallback_forecast(horizon, chosen)
        try:
            mean = self._checked(self._point(horizon), self.grid_.values)
        except ModelFailedError as exc:
            self._fall_back(str(exc))
            return self._fallback_forecast(horizon, chosen)
        return self._forecast(mean, horizon, chosen)

    # -- what a model implements --------------------------------------------------------
    @abstractmethod
    def _fit(self, values: np.ndarray) -> None:
        """Learn from regular, NaN-free values (`self.periods_` is set)."""

    @abstractmethod
    def _predict(self, horizon: int) -> np.ndarray:
        """Point forecast of the next `horizon` steps after the fitted values."""

    def _min_points(self) -> int:
        return self.min_points

    def _period(self, season: str, points: int, seasons: int = 2) -> int:
        """Steps in one `season` ("day" or "week") when `points` hold `seasons` of them; a
        shorter history falls back to the daily season, then to none (1)."""
        daily = self.season_
        period = SEASONS[season] * daily if daily > 1 else 1
        if period > daily and points >= seasons * period:
            return period
        return daily if daily > 1 and points >= seasons * daily else 1

    # -- machinery ------------------------------------------------------------------------
    def _periods(self, grid: Grid) -> list[int]:
        if self.periods is None:
            return detect_periods(grid)
        periods = sorted({int(p) for p in self.periods})
        if any(p < 2 for p in periods):
            raise InvalidInputError(f"periods must be >= 2 steps, got {list(self.periods)!r}")
        return periods

    def _fit_checked(self, values: np.ndarray) -> None:
        if len(values) < self._min_points():
            raise ModelFailedError(
                f"{self.name} needs {self._min_points()} points, the history has {len(values)}"
            )
        try:
            # On the log scale (positive series only), a season and trend multiply the level.
            self.logged_ = bool(self.log and values.min() > 0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with np.errstate(all="ignore"):
                    self._fit(np.log(values) if self.logged_ else values)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError) as exc:
            raise ModelFailedError(f"{self.name} failed to fit: {exc}") from exc

    def _point(self, horizon: int) -> np.ndarray:
        """The model's point forecast on the series' own scale."""
        mean = np.asarray(self._predict(horizon), dtype=np.float64)
        if self.logged_:
            with np.errstate(over="ignore"):
                return np.exp(np.minimum(mean, 700.0))  # 700: exp stays finite, then refused
        return mean

    def _checked(self, mean: np.ndarray, history: np.ndarray) -> np.ndarray:
        """Refuse non-finite or absurd forecasts (the numerical blow-up guard)."""
        mean = np.asarray(mean, dtype=np.float64)
        low, high = float(history.min()), float(history.max())
        reach = BLOW_UP_RANGES * max(high - low, abs(high), 1e-9)
        if not np.isfinite(mean).all() or mean.min() < low - reach or mean.max() > high + reach:
            raise ModelFailedError(f"{self.name} blew up (forecast outside the plausible range)")
        return mean

    def _backtest(self, grid: Grid) -> tuple[np.ndarray | None, Backtest | None]:
        """Signed errors (origins x horizon) at the last `origins` cuts, spaced one horizon."""
        n, h = len(grid.values), self.horizon_
        cuts = [n - k * h for k in range(self.origins, 0, -1)]
        cuts = [c for c in cuts if c >= max(self._min_points(), 2 * self.season_, 2)]
        if not cuts:
            return None, None
        values = grid.values
        errors = []
        for cut in cuts:
            self._fit_checked(values[:cut])
            mean = self._checked(self._point(h), values[:cut])
            if self.nonnegative_:
                mean = np.maximum(mean, 0.0)
            errors.append(values[cut : cut + h] - mean)
        stacked = np.vstack(errors)
        return stacked, summarize(values, stacked, self.season_)

    def _forecast(self, mean: np.ndarray, horizon: int, levels: tuple[int, ...]) -> Forecast:
        widths = self._widths(horizon, levels)
        bands = {}
        for level in levels:
            lo, hi = mean - widths[level], mean + widths[level]
            if self.nonnegative_:
                lo, hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
            bands[level] = (lo, hi)
        if self.nonnegative_:
            mean = np.maximum(mean, 0.0)
        return Forecast(
            timestamps=self.grid_.future(horizon),
            mean=mean,
            bands=bands,
            model=self.name,
            step_seconds=self.grid_.step_seconds,
            periods=tuple(self.periods_),
            backtest=self.backtest_,
            fallback=self.fallback_,
        )

    def _widths(self, horizon: int, levels: tuple[int, ...]) -> dict[int, np.ndarray]:
        """Per-lead half-widths of each level's interval (nested: wider for higher levels)."""
        leads = np.arange(1, horizon + 1)
        if self.errors_ is not None:
            backtested = self.errors_.shape[1]
            index = np.minimum(leads, backtested) - 1
            growth = np.sqrt(np.maximum(leads / backtested, 1.0))
            widths = conformal_widths(self.errors_, levels)
            return {level: widths[level][index] * growth for level in levels}
        # Too short to backtest: seasonal differences, widened once per season ahead.
        lag = self.season_ if len(self.grid_.values) > self.season_ else 1
        pooled = np.abs(self.grid_.values[lag:] - self.grid_.values[:-lag])
        growth = np.sqrt(np.ceil(leads / lag))
        return {level: _conformal(pooled[None, :], level)[0] * growth for level in levels}

    def _fall_back(self, reason: str) -> None:
        self.fallback_ = reason
        self.delegate_ = SeasonalNaive(origins=self.origins, periods=self.periods_ or None)
        self.delegate_.fit(_grid_series(self.grid_), horizon=self.horizon_)

    def _fallback_forecast(self, horizon: int, levels: tuple[int, ...]) -> Forecast:
        return replace(self.delegate_.predict(horizon, levels), fallback=self.fallback_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "grid_"):
            raise NotFittedError(f"{type(self).__name__} must be fitted before predict")


class SeasonalNaive(BaseForecaster):
    """Repeats the last season (one day of steps when two days of history exist, else the
    last value; `season="week"`: the last week when two weeks exist). Always available: it
    needs two points and cannot blow up. The baseline, and the fallback of every model (so it
    lives beside the contract)."""

    name = "seasonal_naive"

    def __init__(
        self,
        *,
        season: str = "day",
        origins: int = ORIGINS,
        periods: Sequence[int] | None = None,
        log: bool = False,
    ) -> None:
        super().__init__(origins=origins, periods=periods, log=log)
        self.season = season

    def _fit(self, values: np.ndarray) -> None:
        self.lag_ = self._period(self.season, len(values), seasons=2)
        self.last_ = values[-self.lag_ :].copy()

    def _predict(self, horizon: int) -> np.ndarray:
        return np.resize(self.last_, horizon)


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent (0..200); points where both are 0 count as exact."""
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(
        2 * np.abs(actual - forecast),
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    return float(100 * ratio.mean())


def summarize(values: np.ndarray, errors: np.ndarray, season: int) -> Backtest:
    """The backtest record of signed `errors` (origins x horizon) made at the last origins of
    `values`, one horizon apart: MASE, sMAPE, seasonal naive's MASE on the same cuts, and the
    cross-conformal coverage of the bands."""
    origins, h = errors.shape
    mases, naive_mases, smapes = [], [], []
    for k, error in enumerate(errors):
        cut = len(values) - (origins - k) * h
        history, actual = values[:cut], values[cut : cut + h]
        scale = mase_scale(history, season)
        lag = season if len(history) >= season else 1
        naive = np.resize(history[-lag:], h)
        mases.append(float(np.abs(error).mean()) / scale)
        naive_mases.append(float(np.abs(actual - naive).mean()) / scale)
        smapes.append(smape(actual, actual - error))
    return Backtest(
        mase=float(np.mean(mases)),
        smape=float(np.mean(smapes)),
        origins=origins,
        horizon=h,
        naive_mase=float(np.mean(naive_mases)),
        coverage=cross_coverage(errors, LEVELS),
    )


def conformal_widths(errors: np.ndarray, levels: Sequence[int]) -> dict[int, np.ndarray]:
    """Each lead's split-conformal half-width at each level, from signed backtest errors."""
    pooled = np.abs(_pool_leads(errors))
    return {level: _conformal(pooled, level) for level in levels}


def cross_coverage(errors: np.ndarray, levels: Sequence[int]) -> dict[int, float]:
    """Share of backtest errors inside the bands calibrated on the other origins."""
    origins, leads = errors.shape
    if origins < 2:
        return {}
    # (leads, origins, pooled leads): each origin's block of a lead's pooled errors.
    pooled = np.abs(_pool_leads(errors)).reshape(leads, origins, -1)
    others = np.array([[o for o in range(origins) if o != k] for k in range(origins)])
    held_out = pooled[:, others, :].reshape(leads, origins, -1)  # (leads, k, the others')
    ranks = [min(1.0, level / 100 * (1 + 1 / held_out.shape[2])) for level in levels]
    widths = np.quantile(held_out, ranks, axis=2, method="higher")  # (levels, leads, k)
    inside = np.abs(errors.T)[None, :, :] <= widths
    return {level: float(inside[i].mean()) for i, level in enumerate(levels)}


def _conformal(pooled: np.ndarray, level: int) -> np.ndarray:
    """Split-conformal: the ceil((n + 1) * level)-th smallest of n absolute errors (per row)."""
    rank = min(1.0, level / 100 * (1 + 1 / pooled.shape[1]))
    return np.asarray(np.quantile(pooled, rank, axis=1, method="higher"), dtype=np.float64)


def _pool_leads(errors: np.ndarray) -> np.ndarray:
    """(leads, samples): each lead's errors plus those of neighbouring leads."""
    backtested = errors.shape[1]
    half = max(1, math.ceil(backtested * POOL_FRACTION / 2))
    offsets = np.arange(-half, half + 1)
    index = np.clip(np.arange(backtested)[:, None] + offsets[None, :], 0, backtested - 1)
    return errors[:, index].transpose(1, 0, 2).reshape(backtested, -1)


def _grid_series(grid: Grid) -> MetricSeries:
    return MetricSeries("grid", grid.timestamps(), grid.values)
