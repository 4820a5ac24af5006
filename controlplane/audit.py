"""The append-only audit log: every state change anywhere in the control plane adds a row here,
in the same transaction as the change, so that the log and the state can never disagree."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from controlplane.storage.models import AuditEventRow


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: object,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEventRow(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            details=details or {},
        )
    )
