"""`/overview`: what an on-call engineer needs at a glance, in one call.

Open incidents by severity and service, SLO burn, actions in the last 24 h, the kill switch,
and the health of the sources (Prometheus reachable, each signal's last successful
collection), plus the latest capacity report. Aggregates only: cheap at any store size.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select

from controlplane.api.deps import DbDep, Viewer
from controlplane.config import Settings
from controlplane.domain.models import IncidentStatus
from controlplane.policy import state
from controlplane.storage.models import DecisionRow, IncidentRow, ReportRow, SignalStateRow

router = APIRouter(tags=["overview"])
TOP_SERVICES = 15
_PROBE_TTL = 10.0
_probe: dict[str, tuple[float, dict[str, Any]]] = {}


@router.get("/overview")
async def overview(request: Request, db: DbDep, _: Viewer) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    now = datetime.now(UTC)

    def query() -> dict[str, Any]:
        with db.read() as session:
            open_ = IncidentRow.status != IncidentStatus.RESOLVED
            severities = session.execute(
                select(IncidentRow.severity, func.count())
                .where(open_)
                .group_by(IncidentRow.severity)
            )
            services = session.execute(
                select(IncidentRow.service, func.count())
                .where(open_)
                .group_by(IncidentRow.service)
                .order_by(func.count().desc())
                .limit(TOP_SERVICES)
            )
            actions = session.execute(
                select(DecisionRow.status, func.count())
                .where(DecisionRow.created_at >= now - timedelta(hours=24))
                .group_by(DecisionRow.status)
            )
            signals = session.scalars(select(SignalStateRow).order_by(SignalStateRow.signal)).all()
            report = session.scalars(
                select(ReportRow).order_by(ReportRow.report_id.desc()).limit(1)
            ).first()
            switch = state.automation_state(session)
            by_severity = {s: n for s, n in severities}
            return {
                "generated_at": now.isoformat(),
                "incidents": {
                    "open": sum(by_severity.values()),
                    "by_severity": by_severity,
                    "by_service": [{"service": s or "-", "open": n} for s, n in services],
                },
                "actions_24h": {s: n for s, n in actions},
                "automation": {
                    "paused": switch.paused,
                    "changed_by": switch.changed_by,
                    "reason": switch.reason,
                },
                "slo_burn": [
                    {
                        "signal": s.signal,
                        "service": s.service,
                        "score": s.last_score,
                        "status": s.status,
                    }
                    for s in signals
                    if s.detector == "slo_burn_rate"
                ],
                "signals": [
                    {
                        "signal": s.signal,
                        "service": s.service,
                        "status": s.status,
                        "last_success_at": s.last_success_at.isoformat()
                        if s.last_success_at
                        else None,
                        "last_error": s.last_error,
                    }
                    for s in signals
                ],
                "capacity": None
                if report is None
                else {
                    "report_id": report.report_id,
                    "status": report.status,
                    "created_at": report.created_at.isoformat(),
                    "signals": report.signals,
                    "at_risk": report.at_risk,
                },
            }

    body = await run_in_threadpool(query)
    body["prometheus"] = await run_in_threadpool(_prometheus, settings)
    return body


def _prometheus(settings: Settings) -> dict[str, Any]:
    """Is the configured Prometheus ready? Probed at most every 10 s."""
    url = settings.prometheus.url
    if not url:
        return {"configured": False, "reachable": None, "detail": "prometheus.url is not set"}
    cached = _probe.get(url)
    if cached and time.monotonic() - cached[0] < _PROBE_TTL:
        return cached[1]
    try:
        response = httpx.get(f"{url.rstrip('/')}/-/ready", timeout=1.5)
        result = {
            "configured": True,
            "reachable": response.is_success,
            "detail": response.text.strip()[:200],
        }
    except httpx.HTTPError as exc:
        result = {"configured": True, "reachable": False, "detail": f"{type(exc).__name__}: {exc}"}
    _probe[url] = (time.monotonic(), result)
    return result
