"""The contract every forecaster in `forecasters.REGISTRY` follows, checked for each of them."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import forecasters
import forecasters.holt_winters as hw
from controlplane.domain.errors import InvalidInputError, NotFittedError
from controlplane.domain.series import MetricSeries
from forecasters.auto import DEFAULT_CANDIDATES, TOP, label
from forecasters.base import ORIGINS, Forecast, conformal_widths, cross_coverage

ALL = sorted(forecasters.REGISTRY)
#: Prophet costs ~0.2 s per fit; the slow Hypothesis property skips it (the rest covers it).
FAST = [name for name in ALL if name != "prophet"]
STEP = np.timedelta64(3600, "s")
START = np.datetime64("2026-01-05T00:00:00", "ns")


def hourly(values: np.ndarray, name: str = "cpu") -> MetricSeries:
    stamps = START + STEP * np.arange(len(values))
    return MetricSeries(name, stamps.astype("datetime64[ns]"), np.asarray(values, dtype=float))


def daily_load(days: int = 21, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(days * 24)
    return 50 + 0.02 * t + 20 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 2, len(t))


def assert_well_formed(forecast: Forecast, horizon: int, last: np.datetime64) -> None:
    assert len(forecast) == horizon
    assert forecast.frame().columns.tolist() == [
        "timestamp",
        "mean",
        "lo-80",
        "hi-80",
        "lo-95",
        "hi-95",
    ]
    expected = last + STEP * np.arange(1, horizon + 1)
    np.testing.assert_array_equal(forecast.timestamps, expected)
    lo95, lo80, mean, hi80, hi95 = (
        forecast.lo(95),
        forecast.lo(80),
        forecast.mean,
        forecast.hi(80),
        forecast.hi(95),
    )
    assert np.isfinite(np.vstack([lo95, lo80, mean, hi80, hi95])).all()
    assert (lo95 <= lo80).all()
    assert (lo80 <= mean).all()
    assert (mean <= hi80).all()
    assert (hi80 <= hi95).all()


@pytest.mark.parametrize("name", ALL)
def test_forecast_shape_order_and_future_timestamps(name: str) -> None:
    series = hourly(daily_load())
    forecast = forecasters.make(name).fit(series, horizon=24).predict(48)
    assert_well_formed(forecast, 48, series.timestamps[-1])
    assert forecast.fallback is None, forecast.fallback
    assert forecast.backtest is not None
    assert forecast.backtest.origins == ORIGINS
    assert forecast.backtest.horizon == 24


@pytest.mark.parametrize("name", ALL)
def test_seasonal_series_is_forecast_well(name: str) -> None:
    """On a clean daily cycle every model beats a flat line by far (MASE well under 1)."""
    values = daily_load(days=24)
    history, actual = values[:-24], values[-24:]
    forecast = forecasters.make(name).fit(hourly(history), horizon=24).predict(24)
    scale = np.abs(history[24:] - history[:-24]).mean()
    mase = np.abs(actual - forecast.mean).mean() / scale
    assert mase < 1.0, f"{name}: MASE {mase:.2f}"
    inside = (actual >= forecast.lo(95)) & (actual <= forecast.hi(95))
    assert inside.mean() >= 0.75


@pytest.mark.parametrize("name", ALL)
def test_gaps_and_nan_are_handled(name: str) -> None:
    values = daily_load()
    values[100:110] = np.nan
    series = hourly(values)
    keep = np.ones(len(values), dtype=bool)
    keep[200:230] = False  # a 30-hour hole in the timestamps
    holed = MetricSeries("cpu", series.timestamps[keep], series.values[keep])
    forecast = forecasters.make(name).fit(holed, horizon=24).predict(24)
    assert_well_formed(forecast, 24, series.timestamps[-1])


@pytest.mark.parametrize("name", ALL)
def test_short_history_falls_back_or_says_why(name: str) -> None:
    short = hourly(np.array([5.0, 6.0, 7.0, 6.5, 6.0]))
    forecast = forecasters.make(name).fit(short).predict(6)
    assert_well_formed(forecast, 6, short.timestamps[-1])
    if name not in ("seasonal_naive", "seasonal_profile", "auto"):
        assert forecast.model == "seasonal_naive"
        assert forecast.fallback
        assert "needs" in forecast.fallback
    with pytest.raises(InvalidInputError, match="at least 2 numeric values"):
        forecasters.make(name).fit(hourly(np.array([1.0, np.nan])))


@pytest.mark.parametrize("name", ALL)
def test_errors_before_fit_and_bad_arguments(name: str) -> None:
    with pytest.raises(NotFittedError):
        forecasters.make(name).predict(3)
    fitted = forecasters.make(name).fit(hourly(daily_load(days=3)))
    with pytest.raises(InvalidInputError, match="horizon"):
        fitted.predict(0)
    with pytest.raises(InvalidInputError, match="levels"):
        fitted.predict(3, levels=(80, 120))
    with pytest.raises(InvalidInputError, match="infinity"):
        forecasters.make(name).fit(hourly(np.array([1.0, np.inf, 2.0])))


@pytest.mark.parametrize("name", ALL)
def test_deterministic(name: str) -> None:
    series = hourly(daily_load(days=10))
    first = forecasters.make(name).fit(series).predict(12)
    second = forecasters.make(name).fit(series).predict(12)
    np.testing.assert_allclose(first.mean, second.mean)
    np.testing.assert_allclose(first.hi(95), second.hi(95))


def test_pandas_series_with_timezone_is_accepted() -> None:
    index = pd.date_range("2026-03-01", periods=72, freq="h", tz="Europe/Paris")
    data = pd.Series(daily_load(days=3), index=index, name="cpu")
    forecast = forecasters.make("seasonal_naive").fit(data).predict(2)
    assert forecast.timestamps[0] == np.datetime64("2026-03-03T23:00:00")


def test_blow_up_falls_back_to_seasonal_naive() -> None:
    class Exploding(forecasters.REGISTRY["seasonal_naive"]):  # type: ignore[misc,valid-type]
        name = "exploding"

        def _predict(self, horizon: int) -> np.ndarray:
            return np.full(horizon, 1e12)

    forecast = Exploding().fit(hourly(daily_load())).predict(24)
    assert forecast.model == "seasonal_naive"
    assert forecast.fallback
    assert "blew up" in forecast.fallback
    assert forecast.mean.max() < 200


def test_auto_blends_its_best_candidates_by_their_backtest() -> None:
    """The served mean is the weighted sum of the top candidates' own forecasts, the weights
    sum to 1 and favour the lower recent error, and the blend carries its own backtest."""
    series = hourly(daily_load(days=30, seed=4))
    auto = forecasters.make("auto").fit(series, horizon=24)
    forecast = auto.predict(24)
    assert set(forecast.candidates) == {label(c) for c in DEFAULT_CANDIDATES}
    assert forecast.model == "blend"
    assert forecast.guard is None
    assert len(forecast.weights) == TOP
    assert sum(forecast.weights.values()) == pytest.approx(1.0)
    ranked = sorted(forecast.weights, key=lambda k: auto.recent_[k])
    assert [forecast.weights[k] for k in ranked] == sorted(forecast.weights.values())[::-1]
    by_label = {label(c): c for c in DEFAULT_CANDIDATES}
    expected = np.zeros(24)
    for key, weight in forecast.weights.items():
        spec = by_label[key]
        name, params = (spec, {}) if isinstance(spec, str) else (spec["model"], dict(spec))
        params.pop("model", None)
        member = forecasters.make(name, **params).fit(series, horizon=24).predict(24)
        expected += weight * member.mean
    np.testing.assert_allclose(forecast.mean, np.maximum(expected, 0.0))
    assert forecast.backtest is not None
    assert forecast.backtest.relative < 1.0
    assert forecast.summary()["backtest"]["mase"] == round(forecast.backtest.mase, 4)
    assert forecast.summary()["weights"] == {k: round(v, 4) for k, v in forecast.weights.items()}


def test_auto_serves_seasonal_naive_where_nothing_beats_it_and_says_so() -> None:
    """A series that repeats itself exactly: any model is noise around naive's exact line."""
    day = np.round(50 + 20 * np.sin(2 * np.pi * np.arange(24) / 24) + 7 * np.cos(np.arange(24)))
    series = hourly(np.tile(day, 21))
    forecast = forecasters.make("auto").fit(series, horizon=24).predict(24)
    assert forecast.model == "seasonal_naive"
    assert forecast.guard is not None
    assert "seasonal naive served" in forecast.guard
    np.testing.assert_allclose(forecast.mean, day)
    assert forecast.summary()["guard"] == forecast.guard
    unguarded = forecasters.make("auto", guard=False).fit(series, horizon=24).predict(24)
    assert unguarded.guard is None


def test_auto_takes_candidates_with_parameters_and_names_bad_ones() -> None:
    series = hourly(daily_load(days=10))
    chosen = [{"model": "holt_winters", "log": True}, "seasonal_profile"]
    forecast = (
        forecasters.make("auto", candidates=chosen, top=1, guard=False).fit(series).predict(6)
    )
    assert set(forecast.candidates) == {"holt_winters(log=True)", "seasonal_profile"}
    assert forecast.model in forecast.candidates
    with pytest.raises(InvalidInputError, match="model name or"):
        forecasters.make("auto", candidates=[{"log": True}]).fit(series)
    with pytest.raises(InvalidInputError, match="colour"):
        forecasters.make("auto", candidates=[{"model": "ets", "colour": 1}]).fit(series)
    with pytest.raises(InvalidInputError, match="top"):
        forecasters.make("auto", top=0)


@pytest.mark.parametrize("name", [n for n in FAST if n != "auto"])
def test_the_log_scale_is_for_positive_series_only(name: str) -> None:
    """`log=True` fits on the log scale when every value is positive; elsewhere it is the
    plain model, and either way the forecast is on the series' own scale."""
    positive = hourly(daily_load(days=10))
    logged = forecasters.make(name, log=True).fit(positive, horizon=24).predict(24)
    assert_well_formed(logged, 24, positive.timestamps[-1])
    assert 20 < float(logged.mean.mean()) < 90
    signed = hourly(daily_load(days=10) - 60)
    plain = forecasters.make(name).fit(signed, horizon=24).predict(24)
    same = forecasters.make(name, log=True).fit(signed, horizon=24).predict(24)
    np.testing.assert_allclose(same.mean, plain.mean)


@pytest.mark.parametrize("name", ["seasonal_naive", "seasonal_profile", "holt_winters"])
def test_a_weekly_season_needs_the_weeks_and_a_known_name(name: str) -> None:
    """season="week" repeats weeks once the history holds them; with less it is daily."""
    short = hourly(daily_load(days=5))
    weekly = forecasters.make(name, season="week").fit(short, horizon=24).predict(24)
    daily = forecasters.make(name).fit(short, horizon=24).predict(24)
    np.testing.assert_allclose(weekly.mean, daily.mean)
    with pytest.raises(InvalidInputError, match="season must be one of"):
        forecasters.make(name, season="month").fit(short)


def test_backtest_reports_naive_and_out_of_sample_coverage() -> None:
    series = hourly(daily_load(days=21, seed=2))
    naive = forecasters.make("seasonal_naive").fit(series, horizon=24).predict(24).backtest
    assert naive is not None
    assert naive.relative == pytest.approx(1.0)
    backtest = forecasters.make("holt_winters").fit(series, horizon=24).predict(24).backtest
    assert backtest is not None
    assert backtest.naive_mase == pytest.approx(naive.mase)
    assert backtest.relative == pytest.approx(backtest.mase / naive.mase)
    assert set(backtest.coverage) == {80, 95}
    assert 0 < backtest.coverage[80] <= backtest.coverage[95] <= 1
    record = backtest.as_dict()
    assert record["coverage"] == {
        "80": round(backtest.coverage[80], 4),
        "95": round(backtest.coverage[95], 4),
    }
    assert record["relative_mase"] == round(backtest.relative, 4)


def test_unknown_model_and_parameter_are_named() -> None:
    with pytest.raises(InvalidInputError, match="'nope'"):
        forecasters.make("nope")
    with pytest.raises(InvalidInputError, match="colour"):
        forecasters.make("ets", colour="red")
    with pytest.raises(InvalidInputError, match="candidates"):
        forecasters.make("auto", candidates=("auto",)).fit(hourly(daily_load(days=3)))


@pytest.mark.parametrize("name", FAST)
@settings(max_examples=15, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.just(float("nan"))),
        min_size=2,
        max_size=80,
    ),
    horizon=st.integers(min_value=1, max_value=30),
)
def test_any_series_gives_ordered_finite_bands(
    name: str, values: list[float], horizon: int
) -> None:
    array = np.asarray(values)
    if np.count_nonzero(~np.isnan(array)) < 2:
        return
    series = hourly(array)
    forecast = forecasters.make(name).fit(series).predict(horizon)
    assert_well_formed(forecast, horizon, series.timestamps[-1])


@settings(max_examples=30, deadline=None)
@given(
    origins=st.integers(min_value=2, max_value=6),
    horizon=st.integers(min_value=1, max_value=60),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_cross_coverage_holds_each_origin_out(origins: int, horizon: int, seed: int) -> None:
    """The vectorised coverage equals bands recalibrated without each origin in turn."""
    errors = np.random.default_rng(seed).standard_t(3, (origins, horizon))
    inside = {80: 0, 95: 0}
    for k in range(origins):
        widths = conformal_widths(np.delete(errors, k, axis=0), (80, 95))
        for level in inside:
            inside[level] += int((np.abs(errors[k]) <= widths[level]).sum())
    expected = {level: count / errors.size for level, count in inside.items()}
    assert cross_coverage(errors, (80, 95)) == pytest.approx(expected)


def test_holt_winters_finds_the_grids_best_parameters() -> None:
    """The bounded scan after coordinate descent returns the whole grid's optimum."""
    values = np.ascontiguousarray(daily_load(days=9, seed=3))
    found = hw._search(values, 24, hw.ALPHAS, hw.BETAS, hw.GAMMAS, hw.PHIS)
    grid = itertools.product(hw.ALPHAS, hw.BETAS, hw.GAMMAS, hw.PHIS)
    best = min(hw._sse(values, 24, *params, np.inf) for params in grid)
    assert hw._sse(values, 24, *found, np.inf) == pytest.approx(best)
