"""Events and links read from the store: an audit row becomes an `Event` with its incident,
its decision and the links a person follows (console, signed approval, Prometheus, Grafana).
The API uses the same links on incidents and decisions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.config import Settings
from controlplane.domain.models import DecisionStatus
from controlplane.notifications import links
from controlplane.notifications.events import (
    Decision,
    Event,
    EventType,
    Incident,
    event_type,
    summary,
)
from controlplane.storage.models import (
    AlertRow,
    AuditEventRow,
    DecisionRow,
    EvidenceRow,
    IncidentRow,
)

#: How much time before an incident opened (or a decision was made) its graph shows, and after.
GRAPH_LEAD, GRAPH_TAIL = timedelta(hours=1), timedelta(minutes=10)


class Linker:
    """Builds the links of incidents and decisions from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.console = settings.console_url
        self.prometheus = settings.links.prometheus_url or settings.prometheus.url
        self.grafana = settings.links.grafana_url
        self.datasource = settings.links.grafana_datasource
        notify = settings.notifications
        self.secret = notify.link_secret.get_secret_value() if notify.link_secret else None
        self.ttl_minutes = notify.link_ttl_minutes

    def incident(self, session: Session, row: IncidentRow) -> dict[str, str]:
        """The console page, and graphs of its evidence from before it opened until after
        it resolved."""
        end = (row.resolved_at or datetime.now(UTC)) + GRAPH_TAIL
        return {
            "console": links.console_incident(self.console, row.incident_id),
            **self.graphs(session, row.incident_id, row.opened_at - GRAPH_LEAD, end),
        }

    def decision(self, session: Session, row: DecisionRow, *, signed: bool) -> dict[str, str]:
        """The approval page (with `signed`, a signed link for the plan it has now) and
        graphs of its incident's evidence around the decision."""
        token = None
        if signed and self.secret and row.status == DecisionStatus.PENDING_APPROVAL:
            expires = links.expiry(datetime.now(UTC), self.ttl_minutes)
            token = links.sign(self.secret, row.decision_id, row.plan_digest, expires)
        end = (row.finished_at or datetime.now(UTC)) + GRAPH_TAIL
        return {
            "approve": links.console_approval(self.console, row.decision_id, token),
            **self.graphs(session, row.incident_id, row.created_at - GRAPH_LEAD, end),
        }

    def graphs(
        self, session: Session, incident_id: int, start: datetime, end: datetime
    ) -> dict[str, str]:
        query = evidence_query(session, incident_id)
        out = {}
        if query and self.prometheus:
            out["prometheus"] = links.prometheus_graph(self.prometheus, query, start, end)
        if query and self.grafana:
            out["grafana"] = links.grafana_explore(self.grafana, self.datasource, query, start, end)
        return out


def evidence_query(session: Session, incident_id: int) -> str | None:
    """The PromQL behind an incident: its first evidence's query, else the expression of the
    Prometheus rule that fired its first alert (from the alert's generatorURL)."""
    for data in session.scalars(
        select(EvidenceRow.data).where(EvidenceRow.incident_id == incident_id).limit(5)
    ):
        if isinstance(data, dict) and data.get("query"):
            return str(data["query"])
    url = session.scalar(
        select(AlertRow.generator_url)
        .where(AlertRow.incident_id == incident_id)
        .order_by(AlertRow.alert_id)
        .limit(1)
    )
    if url:
        expr = parse_qs(urlparse(url).query).get("g0.expr")
        if expr:
            return expr[0]
    return None


def incident_info(row: IncidentRow) -> Incident:
    return Incident(
        id=row.incident_id,
        title=row.title,
        severity=row.severity,
        status=row.status,
        service=row.service,
        labels={str(k): str(v) for k, v in (row.labels or {}).items()},
        opened_at=row.opened_at.isoformat(),
        source=row.source,
    )


def decision_info(row: DecisionRow) -> Decision:
    diff = (row.plan or {}).get("diff")
    return Decision(
        id=row.decision_id,
        policy=row.policy,
        action=row.action,
        target=row.target,
        status=row.status,
        reason=row.reason[:500],
        mode=row.mode,
        diff=diff if isinstance(diff, list) else None,
    )


def events(session: Session, linker: Linker, rows: Iterable[AuditEventRow]) -> list[Event]:
    """The events among audit rows (most rows are not events people are told about)."""
    out = []
    for row in rows:
        kind = event_type(row.action, row.details or {})
        if kind is not None:
            out.append(
                build(session, linker, kind, f"audit-{row.audit_event_id}", row.actor, row.at, row)
            )
    return out


def build(
    session: Session,
    linker: Linker,
    kind: EventType,
    event_id: str,
    actor: str,
    at: datetime,
    row: AuditEventRow | None = None,
    decision_row: DecisionRow | None = None,
) -> Event:
    incident_row = None
    if row is not None and row.target_type == "incident":
        incident_row = session.get(IncidentRow, int(row.target_id))
    elif row is not None and row.target_type == "decision":
        decision_row = session.get(DecisionRow, int(row.target_id))
    if decision_row is not None:
        incident_row = session.get(IncidentRow, decision_row.incident_id)
    incident = incident_info(incident_row) if incident_row else None
    decision = decision_info(decision_row) if decision_row else None
    found: dict[str, str] = {}
    if incident_row is not None:
        found.update(linker.incident(session, incident_row))
    if decision_row is not None:
        waiting = kind in (EventType.APPROVAL_WAITING, EventType.APPROVAL_ESCALATED)
        found.update(linker.decision(session, decision_row, signed=waiting))
    details: dict[str, Any] = {}
    if row is not None and row.target_type == "automation":
        details["reason"] = (row.details or {}).get("reason")
    return Event(
        id=event_id,
        type=kind,
        at=at.astimezone(UTC).isoformat(),
        actor=actor,
        summary=summary(kind, incident, decision),
        incident=incident,
        decision=decision,
        links=found,
        details=details,
    )
