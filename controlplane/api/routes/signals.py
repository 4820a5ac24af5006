"""`/api/v1/signals` (what the detection scheduler watches and how each signal stands) and
`/api/v1/traces/...` (the dependency graph and RED series built from spans)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from controlplane.api.deps import DbDep, Viewer
from controlplane.api.schemas import EdgePublic, RedPointPublic, SignalPublic, error_responses
from controlplane.collectors import traces
from controlplane.domain.series import utc
from controlplane.storage.models import SignalStateRow

router = APIRouter(tags=["signals"])
_ERRORS = error_responses(401, 403)
Minutes = Annotated[int, Query(ge=1, le=7 * 24 * 60, description="Look back this many minutes.")]


@router.get("/signals", response_model=list[SignalPublic], responses=_ERRORS)
async def list_signals(db: DbDep, _: Viewer) -> list[SignalPublic]:
    def query() -> list[SignalPublic]:
        with db.read() as session:
            rows = session.scalars(select(SignalStateRow).order_by(SignalStateRow.signal))
            return [SignalPublic.model_validate(r) for r in rows]

    return await run_in_threadpool(query)


@router.get("/traces/graph", response_model=list[EdgePublic], responses=_ERRORS)
async def dependency_graph(db: DbDep, _: Viewer, minutes: Minutes = 60) -> list[EdgePublic]:
    since = datetime.now(UTC) - timedelta(minutes=minutes)

    def query() -> list[EdgePublic]:
        with db.read() as session:
            return [EdgePublic.model_validate(e) for e in traces.dependency_graph(session, since)]

    return await run_in_threadpool(query)


@router.get("/traces/red", response_model=list[RedPointPublic], responses=_ERRORS)
async def red_series(
    db: DbDep,
    _: Viewer,
    service: str,
    metric: Annotated[str, Query(pattern="^(rate|error_ratio|p50|p95|p99)$")] = "rate",
    operation: str | None = None,
    minutes: Minutes = 60,
) -> list[RedPointPublic]:
    end = datetime.now(UTC)

    def query() -> list[RedPointPublic]:
        with db.read() as session:
            series = traces.red_series(
                session, service, metric, end - timedelta(minutes=minutes), end, operation
            )
        return [
            RedPointPublic(at=utc(t), value=None if v != v else float(v))
            for t, v in zip(series.timestamps, series.values, strict=True)
        ]

    return await run_in_threadpool(query)
