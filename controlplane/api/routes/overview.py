"""`/overview`: what an on-call engineer needs at a glance, in one call.

Open incidents by severity and service, SLO burn, actions in the last 24 h, the kill switch,
and the health of the sources (Prometheus reachable, each signal's last successful
collection), plus the latest capacity report. Aggregates only: cheap at any store size.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from controlplane.api.deps import DbDep, Viewer
from controlplane.api.schemas import (
    CapacitySummaryPublic,
    IncidentCounts,
    OverviewPublic,
    PrometheusProbe,
    ServiceCount,
    SloBurnPublic,
    SourceHealthPublic,
    SwitchPublic,
    error_responses,
)
from controlplane.config import Settings
from controlplane.policy import state
from controlplane.storage import overview

router = APIRouter(tags=["overview"])
_PROBE_TTL = 10.0
_probe: dict[str, tuple[float, PrometheusProbe]] = {}


@router.get("/overview", response_model=OverviewPublic, responses=error_responses(401, 403))
async def get_overview(request: Request, db: DbDep, _: Viewer) -> OverviewPublic:
    settings: Settings = request.app.state.settings
    now = datetime.now(UTC)
    probe = await run_in_threadpool(_prometheus, settings)  # not while holding a connection

    def query() -> OverviewPublic:
        with db.read() as session:
            seen = overview.snapshot(session, now)
            switch = state.automation_state(session)
            report = seen.latest_report
            return OverviewPublic(
                generated_at=now,
                incidents=IncidentCounts(
                    open=sum(seen.by_severity.values()),
                    by_severity=seen.by_severity,
                    by_service=[ServiceCount(service=s, open=n) for s, n in seen.by_service],
                ),
                actions_24h=seen.decisions_24h,
                automation=SwitchPublic(
                    paused=switch.paused, changed_by=switch.changed_by, reason=switch.reason
                ),
                slo_burn=[
                    SloBurnPublic(
                        signal=s.signal, service=s.service, score=s.last_score, status=s.status
                    )
                    for s in seen.signals
                    if s.detector == "slo_burn_rate"
                ],
                signals=[
                    SourceHealthPublic(
                        signal=s.signal,
                        service=s.service,
                        status=s.status,
                        last_success_at=s.last_success_at,
                        last_error=s.last_error,
                    )
                    for s in seen.signals
                ],
                capacity=None
                if report is None
                else CapacitySummaryPublic(
                    report_id=report.report_id,
                    status=report.status,
                    created_at=report.created_at,
                    signals=report.signals,
                    at_risk=report.at_risk,
                ),
                prometheus=probe,
            )

    return await run_in_threadpool(query)


def _prometheus(settings: Settings) -> PrometheusProbe:
    """Is the configured Prometheus ready? Probed at most every 10 s."""
    url = settings.prometheus.url
    if not url:
        return PrometheusProbe(configured=False, reachable=None, detail="prometheus.url is not set")
    cached = _probe.get(url)
    if cached and time.monotonic() - cached[0] < _PROBE_TTL:
        return cached[1]
    try:
        response = httpx.get(f"{url.rstrip('/')}/-/ready", timeout=1.5)
        result = PrometheusProbe(
            configured=True, reachable=response.is_success, detail=response.text.strip()[:200]
        )
    except httpx.HTTPError as exc:
        detail = f"{type(exc).__name__}: {exc}"
        result = PrometheusProbe(configured=True, reachable=False, detail=detail)
    _probe[url] = (time.monotonic(), result)
    return result
