"""`/api/v1/slos`: each SLO's burn rates, error budget left and burn-rate alerts, evaluated
against Prometheus now; and the budget left over the last days, for its chart."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from controlplane import slos
from controlplane.api.deps import SettingsDep, Viewer
from controlplane.api.schemas import error_responses
from controlplane.collectors.prometheus import PrometheusCollector
from controlplane.config import Settings, SloSettings
from controlplane.domain.errors import NotFoundError, PermanentError

router = APIRouter(prefix="/slos", tags=["slos"])
_ERRORS = error_responses(401, 403, 404, 422, 503)


def _collector(settings: Settings) -> PrometheusCollector:
    if not settings.prometheus.url:
        raise PermanentError("SLOs are evaluated on Prometheus: set prometheus.url")
    return PrometheusCollector(settings.prometheus)


def _instant(collector: PrometheusCollector) -> Any:
    def value(query: str) -> float | None:
        result = collector.instant(query)
        if not result:
            return None
        number = float(result[0]["value"][1])
        return None if math.isnan(number) else number

    return value


def _slo(settings: Settings, name: str) -> SloSettings:
    for slo in settings.slos:
        if slo.name == name:
            return slo
    raise NotFoundError(f"no SLO named {name!r}")


@router.get("", responses=_ERRORS)
async def list_slos(settings: SettingsDep, _: Viewer) -> list[dict[str, Any]]:
    """Every SLO of the settings, evaluated now (empty when there are none)."""
    if not settings.slos:
        return []
    value = _instant(_collector(settings))
    now = datetime.now(UTC)
    return await run_in_threadpool(lambda: [slos.evaluate(s, value, now) for s in settings.slos])


@router.get("/{name}/budget", responses=_ERRORS)
async def budget_series(
    name: str,
    settings: SettingsDep,
    _: Viewer,
    days: Annotated[int, Query(ge=1, le=30)] = 7,
) -> dict[str, Any]:
    """The error budget left, hour by hour, over the last `days` (the SLO's own window at
    each point; a calendar SLO: its rolling equivalent)."""
    slo = _slo(settings, name)
    collector = _collector(settings)
    allowed = 1 - slo.objective
    expr = f"1 - ({slos.live_ratio(slo, slos.budget_window(slo))}) / {allowed:g}"
    end = datetime.now(UTC)

    def query() -> dict[str, Any]:
        found = collector.query_range(expr, end - timedelta(days=days), end, 3600)
        points = []
        if found:
            series = found[0]
            points = [
                {"at": str(t)[:19] + "Z", "remaining": float(v)}
                for t, v in zip(series.timestamps, series.values, strict=True)
                if not math.isnan(v)
            ]
        return {"name": slo.name, "objective": slo.objective, "points": points}

    return await run_in_threadpool(query)
