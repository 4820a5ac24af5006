"""The noise report: is alerting telling people things they act on?

Over incidents opened in a time range: alerts per incident, incidents per service per week,
flapping (incidents that reopened), alerts nobody acknowledged or acted on (candidates to
delete or demote), time to acknowledge and to resolve, and automation's share of resolutions.
On request (`report`), or on a weekly schedule (`NoiseJob`), stored with its Markdown and a
self-contained HTML page (with a chart of incidents per service per week) like the capacity
reports.
"""

from __future__ import annotations

import base64
import io
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.config import Settings
from controlplane.domain.models import DecisionStatus, TimelineKind
from controlplane.incidents.postmortem import as_html
from controlplane.storage import Database
from controlplane.storage.models import AlertRow, DecisionRow, IncidentRow, TimelineEntryRow
from controlplane.storage.reports import ReportJob

KIND = "noise"

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


@dataclass(frozen=True)
class NoiseReport:
    """A noise report (`report`'s document), rendered."""

    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return self.data

    def markdown(self) -> str:
        d = self.data
        share = d["automation_share"]
        automated = "-" if share["share"] is None else f"{100 * share['share']:.0f}%"
        parts = [
            f"# Noise report: {d['since'][:10]} to {d['until'][:10]}",
            f"{d['incidents']} incidents from {d['alerts']} alerts; of {share['resolved']} "
            f"resolved, {share['after_an_automated_fix']} after an automated fix ({automated}).",
            "## Times",
            _table(
                ("", "count", "median", "p90", "max"),
                [
                    (name, *_row(d[key], per))
                    for name, key, per in (
                        ("alerts per incident", "alerts_per_incident", 1),
                        ("minutes to acknowledge", "time_to_acknowledge_seconds", 60),
                        ("minutes to resolve", "time_to_resolve_seconds", 60),
                    )
                ],
            ),
            "## Candidates to delete or demote",
            "Alerts whose every incident nobody acknowledged or acted on, and that resolved "
            "by themselves.",
            _table(
                ("alert", "incidents"), [(n["alert"], n["incidents"]) for n in d["never_acted_on"]]
            ),
            "## Flapping",
            _table(
                ("incident", "title", "reopened"),
                [(f"#{f['incident_id']}", f["title"], f["reopened"]) for f in d["flapping"]],
            ),
            "## Incidents per service per week",
            _table(
                ("service", "week of", "incidents"),
                [
                    (service, week, count)
                    for service, weeks in d["incidents_per_service_per_week"].items()
                    for week, count in weeks.items()
                ],
            ),
        ]
        return "\n\n".join(parts) + "\n"

    def html(self) -> str:
        page = as_html(self.markdown(), f"Noise report {self.data['until'][:10]}")
        weeks = self.data["incidents_per_service_per_week"]
        if not weeks:
            return page
        chart = (
            "<h2>Chart</h2><img alt='incidents per service per week' "
            f"src='data:image/png;base64,{_chart(weeks)}'/>"
        )
        return page.replace("</body>", f"{chart}</body>")


class NoiseJob(ReportJob[NoiseReport]):
    """The noise report of the `noise.days` before each run of `noise.schedule`."""

    kind = KIND

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.days = settings.noise.days
        super().__init__(db, settings.noise, settings.coordination.lease_seconds, clock)

    def build(self, now: datetime, on_progress: Callable[[str], None]) -> NoiseReport:
        with self.db.read() as session:
            return NoiseReport(report(session, now - timedelta(days=self.days), now))

    def counts(self, report: NoiseReport | None) -> tuple[int, int]:
        """Incidents, and alert names that are candidates to delete."""
        if report is None:
            return 0, 0
        return report.data["incidents"], len(report.data["never_acted_on"])


def _row(stats: dict[str, Any], per: float) -> tuple[Any, ...]:
    """count, median, p90 and max, the last three divided by `per`."""
    values = (stats[k] for k in ("median", "p90", "max"))
    return (stats["count"], *("-" if v is None else f"{v / per:.4g}" for v in values))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return "None."
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows
    ]
    return "\n".join(lines)


def _chart(weeks: dict[str, dict[str, int]]) -> str:
    """Incidents per week, stacked by service, as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mondays = sorted({week for counts in weeks.values() for week in counts})
    figure, axes = plt.subplots(figsize=(9, 3.2), dpi=90)
    bottom = np.zeros(len(mondays))
    for service, counts in weeks.items():
        heights = np.array([counts.get(week, 0) for week in mondays], dtype=float)
        axes.bar(mondays, heights, bottom=bottom, label=service)
        bottom += heights
    axes.set_ylabel("incidents")
    axes.set_title("Incidents per service, per week (Monday)", fontsize=10)
    axes.legend(fontsize=7, loc="upper left", ncol=4)
    axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()
