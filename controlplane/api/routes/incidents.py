"""`/api/v1/incidents`: list (filtered, paginated), detail, acknowledge, resolve."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

import runbooks
from controlplane.api.deps import DbDep, Operator, Viewer
from controlplane.api.params import Id, Moment, Offset
from controlplane.api.schemas import (
    DecisionPublic,
    EvidencePublic,
    IncidentDetailPublic,
    IncidentPublic,
    IncidentsPublic,
    RootCauseHintPublic,
    TransitionRequest,
    error_responses,
)
from controlplane.detection import rootcause
from controlplane.domain.models import IncidentStatus, Principal, Severity
from controlplane.incidents import lifecycle, postmortem
from controlplane.notifications import links
from controlplane.notifications.from_store import Linker
from controlplane.storage import Database
from controlplane.storage import decisions as store
from controlplane.storage.models import DecisionRow, EvidenceRow, IncidentRow

router = APIRouter(prefix="/incidents", tags=["incidents"])
_ERRORS = error_responses(401, 403, 404)


@router.get("", response_model=IncidentsPublic, responses=_ERRORS)
async def list_incidents(
    db: DbDep,
    _: Viewer,
    status: Annotated[list[IncidentStatus] | None, Query(description="Repeatable.")] = None,
    severity: Annotated[list[Severity] | None, Query(description="Repeatable.")] = None,
    service: Annotated[
        str | None, Query(max_length=255, description="Text the service contains (any case).")
    ] = None,
    since: Annotated[Moment | None, Query(description="Opened at or after.")] = None,
    until: Annotated[Moment | None, Query(description="Opened before.")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text the title contains (any case).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    order: Annotated[
        lifecycle.Order,
        Query(description="newest first, or urgent: most severe, then waiting longest, first."),
    ] = "newest",
) -> IncidentsPublic:
    where = lifecycle.IncidentFilter(
        statuses=status or (),
        severities=severity or (),
        service=service,
        opened_after=since,
        opened_before=until,
        text=q or None,
    )

    def query() -> IncidentsPublic:
        with db.read() as session:
            rows, total = lifecycle.list_incidents(
                session, where, limit=limit, offset=offset, order=order
            )
            return IncidentsPublic(
                data=[IncidentPublic.model_validate(r) for r in rows],
                count=total,
                limit=limit,
                offset=offset,
            )

    return await run_in_threadpool(query)


@router.get("/{incident_id}", response_model=IncidentDetailPublic, responses=_ERRORS)
async def get_incident(
    incident_id: Id, request: Request, db: DbDep, _: Viewer
) -> IncidentDetailPublic:
    linker = Linker(request.app.state.settings)

    def query() -> IncidentDetailPublic:
        with db.read() as session:
            row = lifecycle.get_incident(session, incident_id, details=True)
            detail = IncidentDetailPublic.model_validate(row)
            detail.links = linker.incident(session, row)
            detail.evidence = [_evidence(e, linker.prometheus) for e in row.evidence]
            detail.root_cause_hints = [
                RootCauseHintPublic.model_validate(h) for h in rootcause.hints_for(session, row)
            ]
            decisions = store.for_incident(session, incident_id)
            detail.decisions = [
                DecisionPublic.model_validate(d).model_copy(
                    update={"links": linker.decision(session, d, signed=False)}
                )
                for d in decisions
            ]
            detail.runbooks = _runbooks(row, decisions)
            return detail

    return await run_in_threadpool(query)


@router.get(
    "/{incident_id}/postmortem",
    response_class=Response,
    responses={
        **_ERRORS,
        **error_responses(409),
        200: {"content": {"text/markdown": {}, "text/html": {}}},
    },
)
async def postmortem_draft(
    incident_id: Id,
    request: Request,
    db: DbDep,
    _: Viewer,
    format: Annotated[Literal["markdown", "html"], Query(description="markdown or html.")] = (
        "markdown"
    ),
) -> Response:
    """A blameless postmortem draft of a resolved incident (409 while it is open): its
    facts, timeline, evidence charts, root-cause hints and what automation did, with blank
    sections for people (impact, what went well, action items)."""
    linker = Linker(request.app.state.settings)

    def build() -> Response:
        with db.read() as session:
            row = lifecycle.get_incident(session, incident_id, details=True)
            hints = [
                postmortem.Hint(h.service, h.signal, list(h.reasons))
                for h in rootcause.hints_for(session, row)
            ]
            decisions = list(store.for_incident(session, incident_id))
            text = postmortem.draft(row, decisions, hints, linker.incident(session, row))
        name = f"postmortem-incident-{incident_id}"
        if format == "html":
            page = postmortem.as_html(text, f"Postmortem #{incident_id}")
            return HTMLResponse(page, headers=_attachment(f"{name}.html"))
        return Response(text, media_type="text/markdown", headers=_attachment(f"{name}.md"))

    return await run_in_threadpool(build)


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


@router.post(
    "/{incident_id}/ack",
    response_model=IncidentPublic,
    responses={**_ERRORS, **error_responses(409)},
)
async def acknowledge(
    incident_id: Id,
    db: DbDep,
    actor: Operator,
    body: TransitionRequest | None = None,
) -> IncidentPublic:
    return await run_in_threadpool(_transition, db, lifecycle.acknowledge, incident_id, actor, body)


@router.post("/{incident_id}/resolve", response_model=IncidentPublic, responses=_ERRORS)
async def resolve(
    incident_id: Id,
    db: DbDep,
    actor: Operator,
    body: TransitionRequest | None = None,
) -> IncidentPublic:
    return await run_in_threadpool(_transition, db, lifecycle.resolve, incident_id, actor, body)


def _runbooks(incident: IncidentRow, decisions: Sequence[DecisionRow]) -> list[str]:
    """Runbooks of the matching policies, then the alerts' own: a `runbook` or `runbook_url`
    annotation naming one, or the runbook named after the alert (HighLatency: high-latency)."""
    known = set(runbooks.names())
    linked = [d.runbook for d in decisions if d.runbook]
    for alert in incident.alerts:
        named = str(alert.annotations.get("runbook") or alert.annotations.get("runbook_url") or "")
        candidates = [named.rstrip("/").rsplit("/", 1)[-1].removesuffix(".md"), _kebab(alert.name)]
        linked.extend(name for name in candidates if name in known)
    return list(dict.fromkeys(linked))


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _transition(
    db: Database,
    change: lifecycle.Transition,
    incident_id: Id,
    actor: Principal,
    body: TransitionRequest | None,
) -> IncidentPublic:
    with db.write() as session:
        row = change(session, incident_id, actor, body.comment if body else None)
        return IncidentPublic.model_validate(row)


__all__ = ["router"]


def _evidence(row: EvidenceRow, prometheus_url: str) -> EvidencePublic:
    """The evidence, with a link to its query in the Prometheus graph (an hour either side
    of the onset) when it has a query and Prometheus is configured."""
    evidence = EvidencePublic.model_validate(row)
    query = evidence.data.get("query")
    if prometheus_url and isinstance(query, str):
        around = timedelta(hours=1)
        onset = evidence.onset_at
        evidence.graph_url = links.prometheus_graph(
            prometheus_url, query, onset - around, onset + around
        )
    return evidence
