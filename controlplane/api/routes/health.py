"""Liveness, readiness and the control plane's own metrics (no authentication: scraped by
Prometheus and probed by orchestrators; they reveal no incident data)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controlplane import __version__
from controlplane.api.deps import DbDep
from controlplane.api.schemas import ReadinessPublic, media
from controlplane.domain.errors import StoreUnavailableError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz", response_model=ReadinessPublic, responses={503: {"model": ReadinessPublic}})
async def readyz(db: DbDep) -> JSONResponse:
    """Ready when the store answers and is migrated; 503 otherwise."""
    try:
        await run_in_threadpool(db.ping)
    except StoreUnavailableError as exc:
        return JSONResponse({"status": "unavailable", "store": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready", "store": "ok"})


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses=media("Prometheus text exposition", CONTENT_TYPE_LATEST),
)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
