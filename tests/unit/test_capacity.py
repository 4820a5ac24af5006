"""Capacity maths: crossing dates and probability, replica recommendation, and their invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.domain.errors import InvalidInputError
from forecasters.base import Forecast
from forecasters.capacity import crossing, recommend_replicas

HOUR = np.timedelta64(3600, "s")
START = np.datetime64("2026-06-01T00:00:00", "ns")


def forecast_of(mean: list[float] | np.ndarray, spread: float = 5.0) -> Forecast:
    mean = np.asarray(mean, dtype=float)
    stamps = START + HOUR * np.arange(1, len(mean) + 1)
    return Forecast(
        timestamps=stamps,
        mean=mean,
        bands={
            80: (mean - spread * 1.2816 / 1.96, mean + spread * 1.2816 / 1.96),
            95: (mean - spread, mean + spread),
        },
        model="test",
        step_seconds=3600.0,
    )


def test_mean_and_risk_dates_and_probability() -> None:
    ramp = forecast_of(np.linspace(50, 100, 51), spread=10.0)  # +1 per hour
    result = crossing(ramp, limit=80.0, lead_seconds=48 * 3600)
    assert result.mean_at == START + 31 * HOUR  # mean 80 at index 30 -> hour 31
    assert result.risk_at == START + 21 * HOUR  # mean + 10 reaches 80 at index 20
    assert result.at_risk
    assert result.probability > 0.99
    early = crossing(ramp, limit=80.0, lead_seconds=10 * 3600)
    assert not early.at_risk
    assert early.probability < 0.05
    assert early.as_dict()["mean_at"] == "2026-06-02T07:00:00+00:00"


def test_no_crossing_within_the_horizon() -> None:
    flat = forecast_of(np.full(24, 40.0), spread=4.0)
    result = crossing(flat, limit=90.0, lead_seconds=86_400)
    assert result.mean_at is None
    assert result.risk_at is None
    assert not result.at_risk
    assert result.probability < 1e-9


def test_zero_width_bands_give_certain_answers() -> None:
    exact = forecast_of([10.0, 20.0, 30.0], spread=0.0)
    assert crossing(exact, 20.0, 3 * 3600).probability == 1.0
    assert crossing(exact, 31.0, 3 * 3600).probability == 0.0


def test_bad_limit_and_lead_are_named() -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        crossing(forecast_of([1.0]), float("nan"), 60)
    with pytest.raises(InvalidInputError, match="lead_seconds"):
        crossing(forecast_of([1.0]), 1.0, 0)


def test_replicas_for_the_planned_peak() -> None:
    load = forecast_of([300.0, 500.0, 800.0, 600.0], spread=0.0)
    plan = recommend_replicas(
        load, capacity_per_replica=100, current_replicas=4, current_load=280, plan_for="mean"
    )
    assert plan.needed == 12  # ceil(800 / (100 * 0.7))
    assert plan.peak_at == START + 3 * HOUR
    assert plan.headroom_now == pytest.approx(0.3)
    assert plan.headroom_at_peak == pytest.approx(-1.0)
    assert plan.headroom_at_peak_after == pytest.approx(1 - 800 / 1200)
    clamped = recommend_replicas(
        load, capacity_per_replica=100, current_replicas=4, current_load=280, max_replicas=6
    )
    assert clamped.needed == 6
    assert clamped.unclamped > 6


def test_replica_inputs_are_validated() -> None:
    load = forecast_of([1.0])
    with pytest.raises(InvalidInputError, match="capacity_per_replica"):
        recommend_replicas(load, capacity_per_replica=0, current_replicas=1, current_load=1)
    with pytest.raises(InvalidInputError, match="target_utilization"):
        recommend_replicas(
            load, capacity_per_replica=1, current_replicas=1, current_load=1, target_utilization=2
        )
    with pytest.raises(InvalidInputError, match="plan_for"):
        recommend_replicas(
            load, capacity_per_replica=1, current_replicas=1, current_load=1, plan_for="hi-99"
        )  # type: ignore[arg-type]


means = st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=48)


@settings(max_examples=200, deadline=None)
@given(mean=means, spread=st.floats(0, 1e4), limit=st.floats(0, 1e6), more=st.floats(0, 1e6))
def test_a_higher_limit_never_crosses_earlier(
    mean: list[float], spread: float, limit: float, more: float
) -> None:
    forecast = forecast_of(mean, spread)
    low, high = crossing(forecast, limit, 86_400), crossing(forecast, limit + more, 86_400)
    for a, b in ((low.mean_at, high.mean_at), (low.risk_at, high.risk_at)):
        assert b is None or (a is not None and a <= b)
    assert high.probability <= low.probability + 1e-12


@settings(max_examples=200, deadline=None)
@given(
    mean=means,
    extra=st.lists(st.floats(min_value=0, max_value=1e6), min_size=48, max_size=48),
    capacity=st.floats(0.1, 1e4),
    target=st.floats(0.05, 1.0),
    plan_for=st.sampled_from(["mean", "hi-80", "hi-95"]),
)
def test_more_load_never_needs_fewer_replicas(
    mean: list[float], extra: list[float], capacity: float, target: float, plan_for: str
) -> None:
    base = np.asarray(mean)
    heavier = base + np.asarray(extra[: len(base)])
    kwargs = {
        "capacity_per_replica": capacity,
        "current_replicas": 3,
        "current_load": 1.0,
        "target_utilization": target,
        "min_replicas": 1,
        "max_replicas": 10_000,
        "plan_for": plan_for,
    }
    light = recommend_replicas(forecast_of(base, 2.0), **kwargs)  # type: ignore[arg-type]
    heavy = recommend_replicas(forecast_of(heavier, 2.0), **kwargs)  # type: ignore[arg-type]
    assert heavy.needed >= light.needed
