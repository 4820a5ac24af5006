"""Human controls over automation: the kill switch, approving or rejecting a decision, and
asking for a stale one to be planned again.

Each runs inside the caller's transaction and is audited with who did it and why.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from controlplane.domain.errors import ConflictError, InvalidInputError, NotFoundError
from controlplane.domain.models import DecisionStatus, IncidentStatus, Principal, TimelineKind
from controlplane.domain.storable import blank
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
    """Pause (kill switch) or resume every action that would change something. Safe under
    any concurrency: the switch's row is created if missing without a race (insert, or
    nothing if another request made it first), then locked, so concurrent calls apply one
    after the other and the last one audited is the state that stays."""
    now = datetime.now(UTC)
    first = {"automation_state_id": SWITCH_ID, "paused": False, "changed_by": who.name}
    dialect = session.get_bind().dialect.name
    make = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        make(AutomationStateRow).values(**first, changed_at=now).on_conflict_do_nothing()
    )
    row = session.get(AutomationStateRow, SWITCH_ID, with_for_update=True, populate_existing=True)
    assert row is not None
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


def _locked(session: Session, decision_id: int) -> DecisionRow:
    row = session.scalars(
        select(DecisionRow).where(DecisionRow.decision_id == decision_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"decision {decision_id} does not exist")
    return row


def review(
    session: Session,
    decision_id: int,
    who: Principal,
    *,
    approve: bool,
    comment: str,
    plan_digest: str | None = None,
) -> DecisionRow:
    """Approve or reject a decision waiting for approval; the comment is required. With
    `plan_digest` (what the reviewer read), a decision planned again since is refused."""
    if blank(comment):
        raise InvalidInputError("comment: required when approving or rejecting, got ''")
    row = _locked(session, decision_id)
    if row.status != DecisionStatus.PENDING_APPROVAL:
        raise ConflictError(f"decision {decision_id} is {row.status}, not pending_approval")
    if plan_digest is not None and plan_digest != row.plan_digest:
        raise ConflictError(
            f"decision {decision_id} was planned again since it was read (plan_digest "
            f"{plan_digest!r}, now {row.plan_digest!r}): read the new plan before reviewing it"
        )
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


def request_replan(
    session: Session, decision_id: int, who: Principal, *, comment: str
) -> DecisionRow:
    """Ask for a stale decision of a still open incident to be planned again: the policy
    loop decides it afresh (every guardrail, a fresh read of the target) and, when the policy
    asks for approval, it waits for a new one."""
    if blank(comment):
        raise InvalidInputError("comment: required when asking for a new plan, got ''")
    row = _locked(session, decision_id)
    if row.status != DecisionStatus.STALE:
        raise ConflictError(
            f"decision {decision_id} is {row.status}: only a stale decision is planned again"
        )
    incident = session.get(IncidentRow, row.incident_id)
    if incident is not None and incident.status == IncidentStatus.RESOLVED:
        raise ConflictError(
            f"decision {decision_id}: incident #{row.incident_id} is resolved, there is "
            "nothing left to fix (a new incident gets a new decision)"
        )
    now = datetime.now(UTC)
    row.status, row.updated_at = DecisionStatus.REPLANNING, now
    row.reason = f"a new plan was asked for by {who.name}: {comment}"[:2000]
    audit.record(
        session,
        actor=who.name,
        action="decision.replan_requested",
        target_type="decision",
        target_id=decision_id,
        details={"role": who.role.value, "comment": comment, "policy": row.policy},
    )
    session.add(
        TimelineEntryRow(
            incident_id=row.incident_id,
            kind=TimelineKind.DECISION,
            actor=who.name,
            message=f"{row.policy}: a new plan asked for by {who.name}: {comment}"[:2000],
            data={"decision_id": decision_id},
        )
    )
    session.flush()
    return row
