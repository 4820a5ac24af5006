"""Human controls over automation: the kill switch, and approving or rejecting a decision.

Each runs inside the caller's transaction and is audited with who did it and why.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.domain.errors import ConflictError, InvalidInputError, NotFoundError
from controlplane.domain.models import DecisionStatus, IncidentStatus, Principal, TimelineKind
from controlplane.storage import audit
from controlplane.storage.models import (
    AutomationStateRow,
    DecisionRow,
    IncidentRow,
    TimelineEntryRow,
)

SWITCH_ID = 1


def is_paused(session: Session) -> bool:
    row = session.get(AutomationStateRow, SWITCH_ID)
    return bool(row and row.paused)


def automation_state(session: Session) -> AutomationStateRow:
    row = session.get(AutomationStateRow, SWITCH_ID)
    if row is None:
        return AutomationStateRow(
            automation_state_id=SWITCH_ID,
            paused=False,
            changed_by="default",
            changed_at=datetime(1970, 1, 1, tzinfo=UTC),
        )
    return row


def set_paused(
    session: Session, paused: bool, who: Principal, reason: str | None
) -> AutomationStateRow:
    """Pause (kill switch) or resume every action that would change something."""
    row = session.get(AutomationStateRow, SWITCH_ID, with_for_update=True)
    now = datetime.now(UTC)
    if row is None:
        row = AutomationStateRow(automation_state_id=SWITCH_ID, paused=paused, changed_by=who.name)
        session.add(row)
    row.paused, row.changed_by, row.changed_at, row.reason = paused, who.name, now, reason
    audit.record(
        session,
        actor=who.name,
        action="automation.paused" if paused else "automation.resumed",
        target_type="automation",
        target_id=SWITCH_ID,
        details={"role": who.role.value, "reason": reason},
    )
    session.flush()
    return row


def review(
    session: Session, decision_id: int, who: Principal, *, approve: bool, comment: str
) -> DecisionRow:
    """Approve or reject a decision waiting for approval; the comment is required."""
    if not comment.strip():
        raise InvalidInputError("comment: required when approving or rejecting, got ''")
    row = session.scalars(
        select(DecisionRow).where(DecisionRow.decision_id == decision_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"decision {decision_id} does not exist")
    if row.status != DecisionStatus.PENDING_APPROVAL:
        raise ConflictError(f"decision {decision_id} is {row.status}, not pending_approval")
    if approve and is_paused(session):
        raise ConflictError("automation is paused: resume it before approving actions")
    incident = session.get(IncidentRow, row.incident_id)
    if approve and incident is not None and incident.status == IncidentStatus.RESOLVED:
        raise ConflictError(
            f"decision {decision_id} is stale: incident #{row.incident_id} resolved after it "
            "was planned, so it cannot be approved as it is"
        )
    now = datetime.now(UTC)
    row.status = DecisionStatus.APPROVED if approve else DecisionStatus.REJECTED
    row.reason = (
        f"approved by {who.name}; runs next" if approve else f"rejected by {who.name}: {comment}"
    )[:2000]
    row.reviewed_by, row.reviewed_at, row.review_comment, row.updated_at = (
        who.name,
        now,
        comment,
        now,
    )
    verb = "approved" if approve else "rejected"
    audit.record(
        session,
        actor=who.name,
        action=f"decision.{verb}",
        target_type="decision",
        target_id=decision_id,
        details={
            "role": who.role.value,
            "comment": comment,
            "policy": row.policy,
            "target": row.target,
            "params": row.params,
        },
    )
    session.add(
        TimelineEntryRow(
            incident_id=row.incident_id,
            kind=TimelineKind.ACTION,
            actor=who.name,
            message=f"{row.policy}: {verb} by {who.name}: {comment}",
            data={"decision_id": decision_id},
        )
    )
    session.flush()
    return row
