"""The append-only audit log: every state change anywhere in the control plane adds a row here,
in the same transaction as the change, so that the log and the state can never disagree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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
