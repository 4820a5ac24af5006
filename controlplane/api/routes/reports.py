"""`/api/v1/reports`: capacity-forecast and noise reports with their history; JSON, HTML or
Markdown; and the noise figures of any time range (`/reports/noise`).

`POST /reports` (operator) produces one now: the row is claimed and returned at once (202,
status `running`), the work runs in the background and the row turns `done` or `failed`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from sqlalchemy import select

from controlplane.api.deps import DbDep, Operator, Viewer
from controlplane.api.pagination import newest_page
from controlplane.api.params import Id, Moment, Offset
from controlplane.api.schemas import (
    ReportDocumentPublic,
    ReportPublic,
    ReportsPublic,
    error_responses,
)
from controlplane.capacity.job import CapacityJob
from controlplane.domain.errors import ConflictError, InvalidInputError, NotFoundError
from controlplane.incidents import noise
from controlplane.incidents.noise import NoiseJob
from controlplane.storage.models import ReportRow

router = APIRouter(prefix="/reports", tags=["reports"])
_ERRORS = error_responses(401, 403, 404, 409)
Format = Literal["json", "html", "markdown"]
Kind = Literal["capacity", "noise"]


@router.get("", response_model=ReportsPublic, responses=_ERRORS)
async def list_reports(
    db: DbDep,
    _: Viewer,
    status: Annotated[Literal["running", "done", "failed"] | None, Query()] = None,
    kind: Annotated[Kind | None, Query(description="capacity or noise; both by default.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> ReportsPublic:
    """Newest first, without the documents themselves."""

    def query() -> ReportsPublic:
        where = [ReportRow.status == status] if status else []
        where += [ReportRow.kind == kind] if kind else []
        with db.read() as session:
            return newest_page(
                session, select(ReportRow), ReportRow.report_id, where, limit, offset, ReportsPublic
            )

    return await run_in_threadpool(query)


@router.get("/noise", responses=error_responses(401, 403, 422))
async def noise_report(
    db: DbDep,
    _: Viewer,
    since: Moment | None = None,
    until: Moment | None = None,
) -> dict[str, Any]:
    """Is alerting telling people things they act on? Over incidents opened from `since`
    (default: 7 days before `until`) to `until` (default: now): alerts per incident,
    incidents per service per week, flapping incidents, alerts never acknowledged or acted on
    (candidates to delete), time to acknowledge and to resolve, automation's share of
    resolutions."""
    end = until or datetime.now(UTC)
    start = since or end - timedelta(days=7)
    if start >= end:
        raise InvalidInputError(f"since: must be before until, got {start.isoformat()!r}")

    def query() -> dict[str, Any]:
        with db.read() as session:
            return noise.report(session, start, end)

    return await run_in_threadpool(query)


@router.get(
    "/{report_id}",
    response_model=ReportDocumentPublic,
    responses={
        **_ERRORS,
        **error_responses(409),
        200: {"content": {"text/html": {}, "text/markdown": {}}},
    },
)
async def get_report(
    report_id: Id,
    db: DbDep,
    _: Viewer,
    format: Annotated[Format, Query(description="json (default), html or markdown.")] = "json",
) -> Response:
    """The report: the JSON record, the self-contained HTML page, or Markdown."""

    def query() -> Response:
        with db.read() as session:
            row = session.get(ReportRow, report_id)
            if row is None:
                raise NotFoundError(f"report {report_id} does not exist")
            if format == "json":
                meta = ReportPublic.model_validate(row).model_dump()
                document = ReportDocumentPublic(**meta, document=row.data)
                return JSONResponse(document.model_dump(mode="json"))
            if row.status != "done":
                raise ConflictError(f"report {report_id} is {row.status}; only JSON is available")
            if format == "html":
                return HTMLResponse(row.html or "")
            return PlainTextResponse(row.markdown or "", media_type="text/markdown")

    return await run_in_threadpool(query)


@router.post("", status_code=202, response_model=ReportPublic, responses=_ERRORS)
async def create_report(
    request: Request,
    db: DbDep,
    principal: Operator,
    background: BackgroundTasks,
    kind: Annotated[Kind, Query(description="capacity (default) or noise.")] = "capacity",
) -> ReportPublic:
    """Produce a report now (operator); poll `GET /reports/{id}` for the result. A noise
    report covers the `noise.days` before now."""
    settings = request.app.state.settings
    job: CapacityJob | NoiseJob
    if kind == "noise":
        job = NoiseJob(settings, db)
    elif not settings.capacity.signals:
        raise ConflictError("capacity.signals is empty: there is nothing to forecast")
    else:
        job = CapacityJob(settings, db)
    report_id = await run_in_threadpool(job.claim, "api", principal.name)
    if report_id is None:  # pragma: no cover - only scheduled slots can collide
        raise ConflictError("a report is already being produced")
    background.add_task(run_in_threadpool, job.produce, report_id)

    def query() -> ReportPublic:
        with db.read() as session:
            return ReportPublic.model_validate(session.get(ReportRow, report_id))

    return await run_in_threadpool(query)
