"""The append-only audit log: every state change anywhere in the control plane adds a row here,
in the same transaction as the change, so that the log and the state can never disagree."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from controlplane.storage.models import AuditEventRow


def entry(
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: object,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """One audit row as column values: for `record`, and for bulk inserts on hot paths."""
    return {
        "at": at or datetime.now(UTC),
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id),
        "details": details or {},
    }


def record(session: Session, **fields: Any) -> None:
    """Add an audit row (see `entry` for the fields) to the session's transaction."""
    session.add(AuditEventRow(**entry(**fields)))


def listing() -> Select[Any]:
    return select(AuditEventRow)


def filters(
    *,
    actor: str | None,
    action_prefix: str | None,
    target_type: str | None,
    target_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[Any]:
    """Audit query conditions; `action_prefix` "decision." matches decision.approved too."""
    where: list[Any] = []
    if actor:
        where.append(AuditEventRow.actor == actor)
    if action_prefix:
        where.append(AuditEventRow.action.startswith(action_prefix, autoescape=True))  # % and _ too
    if target_type:
        where.append(AuditEventRow.target_type == target_type)
    if target_id:
        where.append(AuditEventRow.target_id == target_id)
    if since:
        where.append(AuditEventRow.at >= since)
    if until:
        where.append(AuditEventRow.at < until)
    return where


def oldest_after(
    session: Session, where: list[Any], after: int, *, limit: int
) -> Sequence[AuditEventRow]:
    """The next `limit` matching rows after id `after`, oldest first (for exports)."""
    return session.scalars(
        select(AuditEventRow)
        .where(*where, AuditEventRow.audit_event_id > after)
        .order_by(AuditEventRow.audit_event_id)
        .limit(limit)
    ).all()
