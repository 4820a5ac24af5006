"""Decisions in the store: the queries the policy loop and the API routes share.

Every function runs inside the caller's session (and so its transaction); none commits. The
policy loop reads incidents to decide on, records decisions with their audit row and
timeline entry, claims approved ones for execution with a conditional update and finds
executions whose lease ran out; the API lists and reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Select, delete, select, update
from sqlalchemy.orm import Session, selectinload

from controlplane.domain.models import DecisionStatus, IncidentStatus, TimelineKind
from controlplane.storage import audit
from controlplane.storage.models import (
    DecisionRow,
    EvidenceRow,
    IncidentRow,
    PolicyOutboxRow,
    TimelineEntryRow,
)

ACTING = [s.value for s in DecisionStatus if s.counts_as_acting]


def outbox(session: Session, *, limit: int) -> list[tuple[int, int]]:
    """(entry, incident) pairs the intake left for the policy loop, oldest first."""
    rows = session.execute(
        select(PolicyOutboxRow.policy_outbox_id, PolicyOutboxRow.incident_id)
        .order_by(PolicyOutboxRow.policy_outbox_id)
        .limit(limit)
    )
    return [(entry, incident) for entry, incident in rows]


def consume(session: Session, entries: Sequence[int]) -> None:
    session.execute(delete(PolicyOutboxRow).where(PolicyOutboxRow.policy_outbox_id.in_(entries)))


def open_incidents(session: Session, incident_ids: set[int]) -> Sequence[IncidentRow]:
    """Those of the incidents that are still open, with their alerts, oldest id first."""
    return session.scalars(
        select(IncidentRow)
        .where(
            IncidentRow.incident_id.in_(incident_ids),
            IncidentRow.status != IncidentStatus.RESOLVED,
        )
        .options(selectinload(IncidentRow.alerts))
        .order_by(IncidentRow.incident_id)
    ).all()


def decided(session: Session, incident_ids: list[int]) -> set[tuple[int, str]]:
    """(incident, policy) pairs that already have a decision."""
    rows = session.execute(
        select(DecisionRow.incident_id, DecisionRow.policy).where(
            DecisionRow.incident_id.in_(incident_ids)
        )
    )
    return {(i, p) for i, p in rows}


def acting_since(session: Session, since: datetime) -> list[tuple[str, str, datetime]]:
    """(policy, target, created_at) of decisions that count against rates and cooldowns."""
    rows = session.execute(
        select(DecisionRow.policy, DecisionRow.target, DecisionRow.created_at).where(
            DecisionRow.status.in_(ACTING), DecisionRow.created_at >= since
        )
    )
    return [(policy, target, at) for policy, target, at in rows]


def spend_since(session: Session, since: datetime) -> list[tuple[dict[str, str], datetime, float]]:
    """(target, created_at, added per hour) of decisions since `since` that act or wait to,
    and whose plan was priced: what the cost guardrail counts against budgets."""
    rows = session.execute(
        select(DecisionRow.plan, DecisionRow.created_at).where(
            DecisionRow.status.in_(ACTING), DecisionRow.created_at >= since
        )
    )
    out = []
    for plan, at in rows:
        cost = (plan or {}).get("cost") or {}
        if isinstance(cost.get("per_hour"), int | float) and isinstance(plan.get("target"), dict):
            out.append((plan["target"], at, float(cost["per_hour"])))
    return out


def evidence_refs(session: Session, incident_id: int) -> list[dict[str, Any]]:
    """The incident's evidence as {id, kind, signal}, for a decision's audit row."""
    rows = session.execute(
        select(EvidenceRow.evidence_id, EvidenceRow.kind, EvidenceRow.signal).where(
            EvidenceRow.incident_id == incident_id
        )
    )
    return [{"id": i, "kind": k, "signal": s} for i, k, s in rows]


def for_incident(session: Session, incident_id: int) -> Sequence[DecisionRow]:
    return session.scalars(
        select(DecisionRow)
        .where(DecisionRow.incident_id == incident_id)
        .order_by(DecisionRow.decision_id)
    ).all()


def filters(status: Sequence[str] | None, policy: str | None, incident_id: int | None) -> list[Any]:
    """The `/decisions` query parameters as SQL conditions."""
    where: list[Any] = []
    if status:
        where.append(DecisionRow.status.in_(status))
    if policy:
        where.append(DecisionRow.policy == policy)
    if incident_id is not None:
        where.append(DecisionRow.incident_id == incident_id)
    return where


def _pending_of_resolved() -> Select[Any]:
    return (
        select(DecisionRow)
        .join(IncidentRow, IncidentRow.incident_id == DecisionRow.incident_id)
        .where(
            DecisionRow.status == DecisionStatus.PENDING_APPROVAL,
            IncidentRow.status == IncidentStatus.RESOLVED,
        )
    )


def any_pending_of_resolved(session: Session) -> bool:
    """Is a decision still waiting for approval although its incident has resolved?"""
    return session.scalar(select(_pending_of_resolved().exists())) is True


def pending_of_resolved(session: Session) -> Sequence[DecisionRow]:
    """Those decisions, locked for update."""
    return session.scalars(_pending_of_resolved().with_for_update(of=DecisionRow)).all()


def mark_stale(
    session: Session, row: DecisionRow, reason: str, *, actor: str, now: datetime
) -> None:
    """The world moved on since the plan: never run it as it is (audited, on the timeline)."""
    row.status, row.reason, row.updated_at = DecisionStatus.STALE, reason, now
    row.lease_owner, row.lease_until = None, None
    _record(session, row, "decision.stale", TimelineKind.DECISION, actor=actor)


def pending(session: Session) -> Sequence[DecisionRow]:
    """Decisions waiting for approval, oldest first."""
    return session.scalars(
        select(DecisionRow)
        .where(DecisionRow.status == DecisionStatus.PENDING_APPROVAL)
        .order_by(DecisionRow.decision_id)
    ).all()


def any_replanning(session: Session) -> bool:
    """Did an operator ask for a stale decision to be planned again?"""
    waiting = select(DecisionRow).where(DecisionRow.status == DecisionStatus.REPLANNING)
    return session.scalar(select(waiting.exists())) is True


def replanning(session: Session) -> Sequence[DecisionRow]:
    return session.scalars(
        select(DecisionRow)
        .where(DecisionRow.status == DecisionStatus.REPLANNING)
        .order_by(DecisionRow.decision_id)
    ).all()


def listing() -> Select[Any]:
    return select(DecisionRow)


def approved_ids(session: Session) -> Sequence[int]:
    return session.scalars(
        select(DecisionRow.decision_id)
        .where(DecisionRow.status == DecisionStatus.APPROVED)
        .order_by(DecisionRow.decision_id)
    ).all()


def claim(session: Session, decision_id: int, owner: str, until: datetime, now: datetime) -> bool:
    """`approved` -> `executing` with a lease, only if still approved: True for the winner."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(DecisionRow)
        .where(
            DecisionRow.decision_id == decision_id,
            DecisionRow.status == DecisionStatus.APPROVED,
        )
        .values(
            status=DecisionStatus.EXECUTING,
            lease_owner=owner,
            lease_until=until,
            started_at=now,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


def _expired(now: datetime) -> Select[Any]:
    return select(DecisionRow).where(
        DecisionRow.status == DecisionStatus.EXECUTING, DecisionRow.lease_until < now
    )


def any_lease_expired(session: Session, now: datetime) -> bool:
    return session.scalar(select(_expired(now).exists())) is True


def lease_expired(session: Session, now: datetime) -> Sequence[DecisionRow]:
    return session.scalars(_expired(now)).all()


def add_timeline(
    session: Session,
    incident_id: int,
    kind: TimelineKind,
    actor: str,
    message: str,
    data: dict[str, Any],
) -> None:
    session.add(
        TimelineEntryRow(
            incident_id=incident_id, kind=kind, actor=actor, message=message[:2000], data=data
        )
    )


def finish(
    session: Session,
    row: DecisionRow,
    status: DecisionStatus,
    reason: str,
    outcome: dict[str, Any],
    *,
    actor: str,
    now: datetime,
) -> None:
    """Close an execution: its final status, an audit row per step and one for the end, and
    a timeline entry on the incident."""
    row.status, row.reason, row.outcome = status, reason, outcome
    row.finished_at, row.updated_at = now, now
    row.lease_owner, row.lease_until = None, None
    for step, result in outcome.items():
        started = result.get("started_at")
        audit.record(
            session,
            actor=actor,
            action=f"action.{step}",
            target_type="decision",
            target_id=row.decision_id,
            details={"policy": row.policy, **result},
            at=datetime.fromisoformat(started) if started else now,  # when the step ran
        )
    _record(session, row, f"action.{status}", TimelineKind.ACTION, actor=actor)


def _record(
    session: Session, row: DecisionRow, action: str, kind: TimelineKind, *, actor: str
) -> None:
    """Where a decision ended up, in the audit log and on its incident's timeline."""
    audit.record(
        session,
        actor=actor,
        action=action,
        target_type="decision",
        target_id=row.decision_id,
        details={"policy": row.policy, "target": row.target, "reason": row.reason},
    )
    add_timeline(
        session,
        row.incident_id,
        kind,
        actor,
        f"{row.policy}: {row.status} ({row.reason})",
        {"decision_id": row.decision_id},
    )
