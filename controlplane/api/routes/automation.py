"""Decisions and the humans' controls: `/decisions` (and `/decisions/{id}/replan`),
`/actions/{id}/approve|reject`, `/automation` (the kill switch), and the audit log `/audit`
with its JSON-lines export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from controlplane.api.deps import Admin, DbDep, Operator, SettingsDep, Viewer
from controlplane.api.pagination import newest_page
from controlplane.api.params import Id, IncidentFilter, Limit, Moment, Offset
from controlplane.api.schemas import (
    AuditEventPublic,
    AuditPublic,
    AutomationPublic,
    DecisionPublic,
    DecisionsPublic,
    PauseRequest,
    ReplanRequest,
    ReviewRequest,
    error_responses,
    media,
)
from controlplane.domain.errors import NotFoundError
from controlplane.domain.models import DecisionStatus, Principal
from controlplane.notifications.from_store import Linker
from controlplane.policy import state
from controlplane.storage import Database, audit, decisions
from controlplane.storage.models import AuditEventRow, DecisionRow

router = APIRouter(tags=["automation"])
_ERRORS = error_responses(401, 403, 404, 409)


@router.get("/decisions", response_model=DecisionsPublic, responses=_ERRORS)
async def list_decisions(
    db: DbDep,
    _: Viewer,
    status: Annotated[list[DecisionStatus] | None, Query(description="Repeatable.")] = None,
    policy: str | None = None,
    incident_id: IncidentFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> DecisionsPublic:
    """Newest first."""
    where = decisions.filters(status, policy, incident_id)

    def query() -> DecisionsPublic:
        with db.read() as session:
            return newest_page(
                session,
                decisions.listing(),
                DecisionRow.decision_id,
                where,
                limit,
                offset,
                DecisionsPublic,
            )

    return await run_in_threadpool(query)


@router.get("/decisions/{decision_id}", response_model=DecisionPublic, responses=_ERRORS)
async def get_decision(
    decision_id: Id, db: DbDep, settings: SettingsDep, _: Viewer
) -> DecisionPublic:
    linker = Linker(settings)

    def query() -> DecisionPublic:
        with db.read() as session:
            row = session.get(DecisionRow, decision_id)
            if row is None:
                raise NotFoundError(f"decision {decision_id} does not exist")
            found = linker.decision(session, row, signed=False)
            return DecisionPublic.model_validate(row).model_copy(update={"links": found})

    return await run_in_threadpool(query)


@router.post("/actions/{decision_id}/approve", response_model=DecisionPublic, responses=_ERRORS)
async def approve(decision_id: Id, body: ReviewRequest, db: DbDep, who: Operator) -> DecisionPublic:
    """Approve a pending decision (operator; comment required). The executor runs it next."""
    return await run_in_threadpool(_review, db, decision_id, who, True, body)


@router.post("/actions/{decision_id}/reject", response_model=DecisionPublic, responses=_ERRORS)
async def reject(decision_id: Id, body: ReviewRequest, db: DbDep, who: Operator) -> DecisionPublic:
    """Reject a pending decision (operator; comment required). Nothing will run."""
    return await run_in_threadpool(_review, db, decision_id, who, False, body)


def _review(
    db: Database, decision_id: int, who: Principal, approve: bool, body: ReviewRequest
) -> DecisionPublic:
    with db.write() as session:
        row = state.review(
            session,
            decision_id,
            who,
            approve=approve,
            comment=body.comment,
            plan_digest=body.plan_digest,
        )
        return DecisionPublic.model_validate(row)


@router.post("/decisions/{decision_id}/replan", response_model=DecisionPublic, responses=_ERRORS)
async def replan(decision_id: Id, body: ReplanRequest, db: DbDep, who: Operator) -> DecisionPublic:
    """Ask for a stale decision (its target moved since the plan) to be planned again
    (operator; comment required). Its incident must still be open. The policy loop makes the
    new plan on its next pass, with every guardrail; it then needs a new approval."""

    def ask() -> DecisionPublic:
        with db.write() as session:
            row = state.request_replan(session, decision_id, who, comment=body.comment)
            return DecisionPublic.model_validate(row)

    return await run_in_threadpool(ask)


@router.get("/automation", response_model=AutomationPublic, responses=_ERRORS)
async def automation(db: DbDep, _: Viewer) -> AutomationPublic:
    def query() -> AutomationPublic:
        with db.read() as session:
            return AutomationPublic.model_validate(state.automation_state(session))

    return await run_in_threadpool(query)


@router.post("/automation/pause", response_model=AutomationPublic, responses=_ERRORS)
async def pause(db: DbDep, who: Admin, body: PauseRequest) -> AutomationPublic:
    """The kill switch (admin; a reason is required): no action that changes anything runs
    until resumed."""
    return await run_in_threadpool(_switch, db, True, who, body.reason)


@router.post("/automation/resume", response_model=AutomationPublic, responses=_ERRORS)
async def resume(db: DbDep, who: Admin, body: PauseRequest) -> AutomationPublic:
    """Resume automation (admin; a reason is required)."""
    return await run_in_threadpool(_switch, db, False, who, body.reason)


def _switch(db: Database, paused: bool, who: Principal, reason: str | None) -> AutomationPublic:
    with db.write() as session:
        return AutomationPublic.model_validate(state.set_paused(session, paused, who, reason))


def audit_filter(
    actor: str | None = None,
    action: Annotated[str | None, Query(description="Prefix, e.g. 'decision.'.")] = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: Moment | None = None,
    until: Moment | None = None,
) -> list[Any]:
    """The audit query parameters (shared by the list and the export) as SQL conditions."""
    return audit.filters(
        actor=actor,
        action_prefix=action,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
    )


AuditFilter = Annotated[list[Any], Depends(audit_filter)]


@router.get("/audit", response_model=AuditPublic, responses=_ERRORS)
async def list_audit(
    db: DbDep, _: Viewer, where: AuditFilter, limit: Limit = 100, offset: Offset = 0
) -> AuditPublic:
    """Newest first."""

    def query() -> AuditPublic:
        with db.read() as session:
            return newest_page(
                session,
                audit.listing(),
                AuditEventRow.audit_event_id,
                where,
                limit,
                offset,
                AuditPublic,
            )

    return await run_in_threadpool(query)


@router.get(
    "/audit/export",
    response_class=StreamingResponse,
    responses={**_ERRORS, **media("Audit rows, one JSON object a line", "application/x-ndjson")},
)
async def export_audit(db: DbDep, _: Viewer, where: AuditFilter) -> StreamingResponse:
    """The matching audit rows as JSON lines, oldest first, streamed in pages."""

    def lines() -> Iterator[bytes]:
        after = 0
        while True:
            with db.read() as session:
                rows = audit.oldest_after(session, where, after, limit=1000)
                chunk = [AuditEventPublic.model_validate(r).model_dump(mode="json") for r in rows]
            if not chunk:
                return
            after = chunk[-1]["audit_event_id"]
            yield "".join(json.dumps(item) + "\n" for item in chunk).encode()

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
    )
