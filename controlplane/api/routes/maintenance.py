"""Maintenance windows: `/maintenance-windows` (list, open, cancel) and the deploy webhook
`/webhooks/deploy` a CI pipeline calls to open one for the service it deploys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from croniter import croniter
from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from controlplane.api.deps import DbDep, Operator, Viewer, authenticated
from controlplane.api.errors import ApiError
from controlplane.api.params import Id
from controlplane.api.schemas import (
    CancelRequest,
    DeployEvent,
    MaintenancePublic,
    MaintenanceRequest,
    error_responses,
)
from controlplane.domain.errors import InvalidInputError
from controlplane.domain.models import Principal, Role
from controlplane.storage import Database, maintenance
from controlplane.storage.models import MaintenanceWindowRow

router = APIRouter(tags=["maintenance"])
_ERRORS = error_responses(401, 403, 404, 409, 422)
LISTED = 200


def _public(row: MaintenanceWindowRow, now: datetime) -> MaintenancePublic:
    shown = MaintenancePublic.model_validate(row)
    shown.open_now = row.cancelled_at is None and maintenance.as_window(row).open_at(now)
    return shown


@router.get("/maintenance-windows", response_model=list[MaintenancePublic], responses=_ERRORS)
async def list_windows(db: DbDep, _: Viewer, active: bool = False) -> list[MaintenancePublic]:
    """Newest first (the last 200); `active=true`: only the ones open now."""

    def query() -> list[MaintenancePublic]:
        now = datetime.now(UTC)
        with db.read() as session:
            if active:
                rows = [r for r in maintenance.current(session, now)]
            else:
                rows = list(
                    session.scalars(
                        select(MaintenanceWindowRow)
                        .order_by(MaintenanceWindowRow.window_id.desc())
                        .limit(LISTED)
                    )
                )
            shown = [_public(r, now) for r in rows]
        return [w for w in shown if w.open_now] if active else shown

    return await run_in_threadpool(query)


def _span(body: MaintenanceRequest, now: datetime) -> tuple[datetime, datetime | None]:
    starts = body.starts_at or now
    if body.recurrence is not None:
        if not croniter.is_valid(body.recurrence):
            raise InvalidInputError(f"recurrence: not a cron expression, got {body.recurrence!r}")
        if body.duration_minutes is None:
            raise InvalidInputError("duration_minutes: a recurring window needs it, got null")
        return starts, body.ends_at
    if body.ends_at is None and body.duration_minutes is None:
        raise InvalidInputError("ends_at: a one-off window needs ends_at or duration_minutes")
    try:
        ends = body.ends_at or starts + timedelta(minutes=body.duration_minutes or 0)
    except OverflowError:
        raise InvalidInputError("duration_minutes: ends after the year 9999") from None
    if ends <= starts:
        raise InvalidInputError(f"ends_at: must be after starts_at, got {ends.isoformat()!r}")
    return starts, ends


def _open(db: Database, body: MaintenanceRequest, who: Principal, source: str) -> MaintenancePublic:
    now = datetime.now(UTC)
    starts, ends = _span(body, now)
    with db.write() as session:
        row = maintenance.create(
            session,
            actor=who.name,
            name=body.name,
            service=body.service,
            namespace=body.namespace,
            starts_at=starts,
            ends_at=ends,
            recurrence=body.recurrence,
            duration_minutes=body.duration_minutes,
            mute_paging=body.mute_paging,
            automation=body.automation,
            reason=body.reason,
            source=source,
        )
        return _public(row, now)


@router.post(
    "/maintenance-windows", response_model=MaintenancePublic, status_code=201, responses=_ERRORS
)
async def open_window(body: MaintenanceRequest, db: DbDep, who: Operator) -> MaintenancePublic:
    """Open a window (operator; reason required; audited)."""
    return await run_in_threadpool(_open, db, body, who, "api")


@router.post(
    "/maintenance-windows/{window_id}/cancel", response_model=MaintenancePublic, responses=_ERRORS
)
async def cancel_window(
    window_id: Id, body: CancelRequest, db: DbDep, who: Operator
) -> MaintenancePublic:
    """Close a window now (operator; reason required; audited)."""

    def cancel() -> MaintenancePublic:
        now = datetime.now(UTC)
        with db.write() as session:
            row = maintenance.cancel(
                session, window_id, actor=who.name, reason=body.reason, now=now
            )
            return _public(row, now)

    return await run_in_threadpool(cancel)


def _deployer(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    """CI may post with a webhook token; people with an operator one."""
    if principal.role in (Role.WEBHOOK, Role.OPERATOR, Role.ADMIN):
        return principal
    raise ApiError(
        403,
        f"token {principal.name!r} has role {principal.role.value!r}; a deploy event needs "
        "'webhook' or 'operator'",
        reason="forbidden",
    )


@router.post(
    "/webhooks/deploy", response_model=MaintenancePublic, status_code=201, responses=_ERRORS
)
async def deploy_event(
    body: DeployEvent, db: DbDep, who: Annotated[Principal, Depends(_deployer)]
) -> MaintenancePublic:
    """A deploy started: open a window for its service (default 30 minutes, automation capped
    at approval, paging muted), so the deploy's own alerts do not page or act on their own."""
    version = f" {body.version}" if body.version else ""
    request = MaintenanceRequest(
        name=f"deploy {body.service}{version}",
        service=body.service,
        namespace=body.namespace,
        duration_minutes=body.minutes,
        mute_paging=body.mute_paging,
        automation=body.automation,
        reason=f"deploy of {body.service}{version}" + (f" ({body.url})" if body.url else ""),
    )
    return await run_in_threadpool(_open, db, request, who, "deploy")
