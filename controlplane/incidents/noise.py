"""The noise report: is alerting telling people things they act on?

Over incidents opened in a time range: alerts per incident, incidents per service per week,
flapping (incidents that reopened), alerts nobody acknowledged or acted on (candidates to
delete or demote), time to acknowledge and to resolve, and automation's share of resolutions.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.domain.models import DecisionStatus, TimelineKind
from controlplane.storage.models import AlertRow, DecisionRow, IncidentRow, TimelineEntryRow

#: Decisions that mean someone (or something) acted on an incident.
ACTED = {
    DecisionStatus.APPROVED,
    DecisionStatus.EXECUTING,
    DecisionStatus.SUCCEEDED,
    DecisionStatus.FAILED,
    DecisionStatus.ROLLED_BACK,
    DecisionStatus.NEEDS_ATTENTION,
}


def report(session: Session, since: datetime, until: datetime) -> dict[str, Any]:
    incidents = session.scalars(
        select(IncidentRow).where(IncidentRow.opened_at >= since, IncidentRow.opened_at < until)
    ).all()
    ids = [i.incident_id for i in incidents]
    alerts = _alerts(session, ids)
    reopens = _reopens(session, ids)
    decisions = _decisions(session, ids)
    per_incident = [len(alerts.get(i, [])) for i in ids]
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "incidents": len(incidents),
        "alerts": sum(per_incident),
        "alerts_per_incident": _stats([float(n) for n in per_incident]),
        "incidents_per_service_per_week": _per_week(incidents),
        "flapping": [
            {"incident_id": i.incident_id, "title": i.title, "reopened": reopens[i.incident_id]}
            for i in sorted(incidents, key=lambda i: -reopens.get(i.incident_id, 0))
            if reopens.get(i.incident_id)
        ][:20],
        "never_acted_on": _never_acted(incidents, alerts, decisions),
        "time_to_acknowledge_seconds": _stats(
            [
                (i.acknowledged_at - i.opened_at).total_seconds()
                for i in incidents
                if i.acknowledged_at
            ]
        ),
        "time_to_resolve_seconds": _stats(
            [(i.resolved_at - i.opened_at).total_seconds() for i in incidents if i.resolved_at]
        ),
        "automation_share": _automation_share(incidents, decisions),
    }


def _alerts(session: Session, ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    for chunk in _chunks(ids):
        for incident_id, name in session.execute(
            select(AlertRow.incident_id, AlertRow.name).where(AlertRow.incident_id.in_(chunk))
        ):
            out[incident_id].append(name)
    return out


def _reopens(session: Session, ids: Sequence[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(TimelineEntryRow.incident_id, func.count())
            .where(
                TimelineEntryRow.incident_id.in_(chunk),
                TimelineEntryRow.kind == TimelineKind.REOPENED,
            )
            .group_by(TimelineEntryRow.incident_id)
        )
        out.update((incident_id, count) for incident_id, count in rows)
    return out


def _decisions(session: Session, ids: Sequence[int]) -> dict[int, list[DecisionRow]]:
    out: dict[int, list[DecisionRow]] = defaultdict(list)
    for chunk in _chunks(ids):
        for row in session.scalars(select(DecisionRow).where(DecisionRow.incident_id.in_(chunk))):
            out[row.incident_id].append(row)
    return out


def _per_week(incidents: Sequence[IncidentRow]) -> dict[str, dict[str, int]]:
    """Per service, incidents per ISO week (its Monday's date)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for incident in incidents:
        monday = (incident.opened_at - timedelta(days=incident.opened_at.weekday())).date()
        counts[incident.service or "-"][monday.isoformat()] += 1
    return {service: dict(sorted(weeks.items())) for service, weeks in sorted(counts.items())}


def _never_acted(
    incidents: Sequence[IncidentRow],
    alerts: dict[int, list[str]],
    decisions: dict[int, list[DecisionRow]],
) -> list[dict[str, Any]]:
    """Alert names whose every incident was never acknowledged, never acted on by a policy,
    and resolved by its own alerts (not by a person): candidates to delete or demote."""
    seen: Counter[str] = Counter()
    ignored: Counter[str] = Counter()
    for incident in incidents:
        untouched = (
            incident.acknowledged_at is None
            and incident.resolved_by == incident.source
            and not any(d.status in ACTED for d in decisions.get(incident.incident_id, []))
        )
        for name in set(alerts.get(incident.incident_id, [])):
            seen[name] += 1
            ignored[name] += untouched
    return [
        {"alert": name, "incidents": seen[name]}
        for name, _ in seen.most_common()
        if ignored[name] == seen[name]
    ]


def _automation_share(
    incidents: Sequence[IncidentRow], decisions: dict[int, list[DecisionRow]]
) -> dict[str, Any]:
    """Of the resolved incidents, those where an action succeeded before the resolution."""
    resolved = [i for i in incidents if i.resolved_at is not None]
    fixed = sum(
        1
        for i in resolved
        if any(
            d.status == DecisionStatus.SUCCEEDED
            and d.finished_at is not None
            and i.resolved_at is not None
            and d.finished_at <= i.resolved_at
            for d in decisions.get(i.incident_id, [])
        )
    )
    share = fixed / len(resolved) if resolved else None
    return {"resolved": len(resolved), "after_an_automated_fix": fixed, "share": share}


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "median": None, "p90": None, "max": None}
    data = np.asarray(values)
    return {
        "count": len(values),
        "median": float(np.median(data)),
        "p90": float(np.percentile(data, 90)),
        "max": float(data.max()),
    }


def _chunks(ids: Sequence[int], size: int = 5000) -> list[Sequence[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
