"""Capacity maths on a forecast: when a limit is crossed, how likely, how many replicas.

- `crossing(forecast, limit, lead_seconds)`: the earliest time the mean reaches the limit, the
  earliest time the upper band of the widest interval does (the risk date), and the
  probability of reaching it within the lead time.
- `recommend_replicas(forecast, ...)`: replicas needed over the horizon so that the planned
  peak load runs at the target utilisation, clamped to [min, max], with headroom now and at
  the peak.

The crossing probability reads each step's spread off its interval (Gaussian: the 95% band is
+-1.96 sigma) and treats forecast errors as fully correlated across steps, as they are in
practice (a level that is off stays off), so P(cross within lead) = max over the lead of
P(value > limit). It can only grow when the limit drops or the lead grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import norm

from controlplane.domain.errors import InvalidInputError
from controlplane.domain.series import utc
from forecasters.base import Forecast

PlanFor = Literal["mean", "hi-80", "hi-95"]


@dataclass(frozen=True)
class Crossing:
    limit: float
    lead_seconds: float
    mean_at: np.datetime64 | None  # the mean reaches the limit (None: not within the horizon)
    risk_at: np.datetime64 | None  # the widest band's upper edge reaches it
    probability: float  # of reaching the limit within the lead time
    at_risk: bool  # the risk date falls within the lead time

    def as_dict(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "lead_seconds": self.lead_seconds,
            "mean_at": _iso(self.mean_at),
            "risk_at": _iso(self.risk_at),
            "probability": round(self.probability, 4),
            "at_risk": self.at_risk,
        }


@dataclass(frozen=True)
class ReplicaPlan:
    current: int
    needed: int  # clamped to [min, max]
    unclamped: int
    plan_for: str
    peak_load: float
    peak_at: np.datetime64
    headroom_now: float  # 1 - load now / capacity of the current replicas (negative: overload)
    headroom_at_peak: float  # the same at the planned peak, with the current replicas
    headroom_at_peak_after: float  # at the peak, with `needed` replicas

    def as_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "needed": self.needed,
            "unclamped": self.unclamped,
            "plan_for": self.plan_for,
            "peak_load": self.peak_load,
            "peak_at": _iso(self.peak_at),
            "headroom_now": round(self.headroom_now, 4),
            "headroom_at_peak": round(self.headroom_at_peak, 4),
            "headroom_at_peak_after": round(self.headroom_at_peak_after, 4),
        }


def crossing(forecast: Forecast, limit: float, lead_seconds: float) -> Crossing:
    """When and how likely the forecast reaches `limit` (upward) within `lead_seconds`."""
    if not math.isfinite(limit):
        raise InvalidInputError(f"limit must be a finite number, got {limit!r}")
    if lead_seconds <= 0:
        raise InvalidInputError(f"lead_seconds must be > 0, got {lead_seconds!r}")
    widest = max(forecast.bands)
    upper = forecast.hi(widest)
    mean_at = _first(forecast.timestamps, forecast.mean >= limit)
    risk_at = _first(forecast.timestamps, upper >= limit)
    ahead = (forecast.timestamps - forecast.timestamps[0]) / np.timedelta64(1, "s")
    within = ahead + forecast.step_seconds <= lead_seconds
    sigma = (upper - forecast.mean) / norm.ppf(0.5 + widest / 200)
    with np.errstate(over="ignore", divide="ignore"):  # a tiny sigma: z is +-inf, sf is exact
        chance = np.where(
            sigma > 0,
            norm.sf((limit - forecast.mean) / np.where(sigma > 0, sigma, 1.0)),
            (forecast.mean >= limit).astype(float),
        )
    probability = float(chance[within].max()) if within.any() else 0.0
    at_risk = bool((upper >= limit)[within].any())
    return Crossing(float(limit), float(lead_seconds), mean_at, risk_at, probability, at_risk)


def recommend_replicas(
    forecast: Forecast,
    *,
    capacity_per_replica: float,
    current_replicas: int,
    current_load: float,
    target_utilization: float = 0.7,
    min_replicas: int = 1,
    max_replicas: int = 100,
    plan_for: PlanFor = "hi-80",
) -> ReplicaPlan:
    """Replicas for the planned peak of a total-load forecast (e.g. requests/s of a service)."""
    _check_replica_inputs(capacity_per_replica, target_utilization, min_replicas, max_replicas)
    if current_replicas < 0:
        raise InvalidInputError(f"current_replicas must be >= 0, got {current_replicas!r}")
    series = _planned(forecast, plan_for)
    peak = max(float(series.max()), 0.0)
    peak_at = forecast.timestamps[int(series.argmax())]
    unclamped = math.ceil(peak / (capacity_per_replica * target_utilization) - 1e-9)
    needed = min(max(unclamped, min_replicas), max_replicas)
    return ReplicaPlan(
        current=current_replicas,
        needed=needed,
        unclamped=unclamped,
        plan_for=plan_for,
        peak_load=peak,
        peak_at=peak_at,
        headroom_now=_headroom(current_load, current_replicas, capacity_per_replica),
        headroom_at_peak=_headroom(peak, current_replicas, capacity_per_replica),
        headroom_at_peak_after=_headroom(peak, needed, capacity_per_replica),
    )


def _planned(forecast: Forecast, plan_for: str) -> np.ndarray:
    if plan_for == "mean":
        return forecast.mean
    side, _, level = plan_for.partition("-")
    if side != "hi" or not level.isdigit() or int(level) not in forecast.bands:
        raise InvalidInputError(
            f"plan_for must be 'mean' or hi-<level> with a level of the forecast "
            f"{sorted(forecast.bands)}, got {plan_for!r}"
        )
    return forecast.hi(int(level))


def _check_replica_inputs(capacity: float, target: float, low: int, high: int) -> None:
    if not capacity > 0:
        raise InvalidInputError(f"capacity_per_replica must be > 0, got {capacity!r}")
    if not 0 < target <= 1:
        raise InvalidInputError(f"target_utilization must be in (0, 1], got {target!r}")
    if not 0 <= low <= high:
        raise InvalidInputError(
            f"min_replicas and max_replicas must satisfy 0 <= min <= max, got {low!r} and {high!r}"
        )


def _headroom(load: float, replicas: int, capacity: float) -> float:
    total = replicas * capacity
    return 1.0 - load / total if total > 0 else -math.inf if load > 0 else 0.0


def _first(timestamps: np.ndarray, hits: np.ndarray) -> np.datetime64 | None:
    index = np.flatnonzero(hits)
    return timestamps[index[0]] if len(index) else None


def _iso(stamp: np.datetime64 | None) -> str | None:
    return None if stamp is None else utc(stamp).isoformat()
