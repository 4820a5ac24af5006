"""Maintenance windows in the store: open, cancel (both audited) and the ones open now."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from controlplane.domain.errors import ConflictError, NotFoundError
from controlplane.domain.maintenance import MaintenanceWindow
from controlplane.storage import audit
from controlplane.storage.models import MaintenanceWindowRow


def as_window(row: MaintenanceWindowRow) -> MaintenanceWindow:
    return MaintenanceWindow(
        window_id=row.window_id,
        name=row.name,
        service=row.service,
        namespace=row.namespace,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        recurrence=row.recurrence,
        duration_minutes=row.duration_minutes,
        mute_paging=row.mute_paging,
        automation=row.automation,  # type: ignore[arg-type]  # validated when opened
    )


def current(session: Session, now: datetime) -> Sequence[MaintenanceWindowRow]:
    """Windows not cancelled whose span includes now (a recurring one may be between
    openings: see `MaintenanceWindow.open_at`)."""
    return session.scalars(
        select(MaintenanceWindowRow)
        .where(
            MaintenanceWindowRow.cancelled_at.is_(None),
            MaintenanceWindowRow.starts_at <= now,
            or_(MaintenanceWindowRow.ends_at.is_(None), MaintenanceWindowRow.ends_at > now),
        )
        .order_by(MaintenanceWindowRow.window_id)
    ).all()


def open_now(session: Session, now: datetime) -> list[MaintenanceWindow]:
    return [w for w in map(as_window, current(session, now)) if w.open_at(now)]


def create(session: Session, *, actor: str, **fields: Any) -> MaintenanceWindowRow:
    row = MaintenanceWindowRow(created_by=actor, **fields)
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="maintenance.opened",
        target_type="maintenance_window",
        target_id=row.window_id,
        details={k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()},
    )
    return row


def cancel(
    session: Session, window_id: int, *, actor: str, reason: str, now: datetime
) -> MaintenanceWindowRow:
    row = session.get(MaintenanceWindowRow, window_id, with_for_update=True)
    if row is None:
        raise NotFoundError(f"maintenance window {window_id} does not exist")
    if row.cancelled_at is not None:
        raise ConflictError(f"maintenance window {window_id} was already cancelled")
    row.cancelled_at, row.cancelled_by = now, actor
    audit.record(
        session,
        actor=actor,
        action="maintenance.cancelled",
        target_type="maintenance_window",
        target_id=window_id,
        details={"reason": reason, "name": row.name},
    )
    session.flush()
    return row
