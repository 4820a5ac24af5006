"""Reading incidents (filtered, paginated) and the human transitions: acknowledge, resolve.

Every transition records who did it on the incident, in its timeline and in the audit log,
inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session, selectinload

from controlplane.domain.errors import ConflictError, NotFoundError
from controlplane.domain.models import IncidentStatus, Principal, Severity, TimelineKind
from controlplane.storage import audit
from controlplane.storage.models import IncidentRow, TimelineEntryRow

_Q = TypeVar("_Q", bound=Select[Any])


@dataclass(frozen=True)
class IncidentFilter:
    statuses: Sequence[IncidentStatus] = ()
    severities: Sequence[Severity] = ()
    service: str | None = None  # case-insensitive substring of the service
    opened_after: datetime | None = None
    opened_before: datetime | None = None
    text: str | None = None  # case-insensitive substring of the title


Order = Literal["newest", "urgent"]
Transition = Callable[[Session, int, Principal, str | None], IncidentRow]


def list_incidents(
    session: Session,
    where: IncidentFilter,
    *,
    limit: int,
    offset: int,
    order: Order = "newest",
) -> tuple[list[IncidentRow], int]:
    """One page of incidents and the total number matching the filter. `newest` first, or
    `urgent`: the most severe first, and among those the oldest (waiting longest) first."""
    query = _filtered(select(IncidentRow), where)
    total = session.scalar(_filtered(select(func.count(IncidentRow.incident_id)), where)) or 0
    keys: tuple[Any, ...]
    if order == "urgent":
        rank = case({s.value: -s.rank for s in Severity}, value=IncidentRow.severity, else_=0)
        keys = (rank, IncidentRow.opened_at, IncidentRow.incident_id)
    else:
        keys = (IncidentRow.opened_at.desc(), IncidentRow.incident_id.desc())
    page = session.scalars(query.order_by(*keys).limit(limit).offset(offset)).all()
    return list(page), total


def get_incident(session: Session, incident_id: int, *, details: bool = False) -> IncidentRow:
    query = select(IncidentRow).where(IncidentRow.incident_id == incident_id)
    if details:
        query = query.options(
            selectinload(IncidentRow.alerts),
            selectinload(IncidentRow.timeline),
            selectinload(IncidentRow.evidence),
        )
    incident = session.scalars(query).one_or_none()
    if incident is None:
        raise NotFoundError(f"incident {incident_id} does not exist")
    return incident


def acknowledge(
    session: Session, incident_id: int, actor: Principal, comment: str | None = None
) -> IncidentRow:
    incident = _lock(session, incident_id)
    if incident.status == IncidentStatus.RESOLVED:
        raise ConflictError(f"incident {incident_id} is resolved; it cannot be acknowledged")
    if incident.status == IncidentStatus.ACKNOWLEDGED:
        return incident  # acknowledging twice is a no-op, not an error
    now = datetime.now(UTC)
    incident.status = IncidentStatus.ACKNOWLEDGED
    incident.acknowledged_at = incident.updated_at = now
    incident.acknowledged_by = actor.name
    _transition(session, incident, actor, TimelineKind.ACKNOWLEDGED, comment, now)
    return incident


def resolve(
    session: Session, incident_id: int, actor: Principal, comment: str | None = None
) -> IncidentRow:
    incident = _lock(session, incident_id)
    if incident.status == IncidentStatus.RESOLVED:
        return incident
    now = datetime.now(UTC)
    incident.status = IncidentStatus.RESOLVED
    incident.resolved_at = incident.updated_at = now
    incident.resolved_by = actor.name
    _transition(session, incident, actor, TimelineKind.RESOLVED, comment, now)
    return incident


def _lock(session: Session, incident_id: int) -> IncidentRow:
    incident = session.scalars(
        select(IncidentRow).where(IncidentRow.incident_id == incident_id).with_for_update()
    ).one_or_none()
    if incident is None:
        raise NotFoundError(f"incident {incident_id} does not exist")
    return incident


def _transition(
    session: Session,
    incident: IncidentRow,
    actor: Principal,
    kind: TimelineKind,
    comment: str | None,
    now: datetime,
) -> None:
    verb = kind.value.capitalize()
    message = f"{verb} by {actor.name}" + (f": {comment}" if comment else "")
    session.add(
        TimelineEntryRow(
            incident_id=incident.incident_id,
            at=now,
            kind=kind,
            actor=actor.name,
            message=message,
            data={"comment": comment} if comment else {},
        )
    )
    audit.record(
        session,
        actor=actor.name,
        action=f"incident.{kind.value}",
        target_type="incident",
        target_id=incident.incident_id,
        details={"role": actor.role.value, "comment": comment},
    )


def _filtered(query: _Q, where: IncidentFilter) -> _Q:
    if where.statuses:
        query = query.where(IncidentRow.status.in_([s.value for s in where.statuses]))
    if where.severities:
        query = query.where(IncidentRow.severity.in_([s.value for s in where.severities]))
    if where.service:
        query = query.where(_contains(IncidentRow.service, where.service))
    if where.opened_after:
        query = query.where(IncidentRow.opened_at >= where.opened_after)
    if where.opened_before:
        query = query.where(IncidentRow.opened_at < where.opened_before)
    if where.text:
        query = query.where(_contains(IncidentRow.title, where.text))
    return query


def _contains(column: Any, text: str) -> Any:
    """`column` contains `text`, in any case, with LIKE's wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")
