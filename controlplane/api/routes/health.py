"""Liveness, readiness and the control plane's own metrics (no authentication: scraped by
Prometheus and probed by orchestrators; they reveal no incident data)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controlplane import __version__
from controlplane.api.schemas import ReadinessPublic, media
from controlplane.domain.errors import StoreUnavailableError
from controlplane.storage import Database

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    """The process is up and serving; `loops`: the background loops it runs (none when
    `api.run_loops` is false and `aiops worker` runs them)."""
    return {"status": "ok", "version": __version__, "loops": list(request.app.state.loops)}


class Readiness:
    """The store probe behind `/readyz`, bounded in cost and time: its answer serves every
    caller for `ttl` seconds (a flood of probes cannot take the write lock away from
    webhooks), a probe with no answer within `timeout` seconds (a store that stopped
    answering) is answered not ready, and while such a probe is still stuck no other is
    started (at most one thread waits on a dead store)."""

    def __init__(self, db: Database, *, ttl: float = 1.0, timeout: float = 2.0) -> None:
        self.db, self.ttl, self.timeout = db, ttl, timeout
        self._lock = asyncio.Lock()
        self._answer: str | None = None
        self._at = -float("inf")
        self._probe: asyncio.Future[None] | None = None

    async def problem(self) -> str | None:
        """None when ready; otherwise why not."""
        async with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                self._answer = await self._check()
                self._at = time.monotonic()
            return self._answer

    async def _check(self) -> str | None:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(asyncio.to_thread(self.db.ping))
        try:
            await asyncio.wait_for(asyncio.shield(self._probe), self.timeout)
        except StoreUnavailableError as exc:
            return str(exc)
        except TimeoutError:
            return f"store unavailable: no answer within {self.timeout:g} s"
        return None


@router.get("/readyz", response_model=ReadinessPublic, responses={503: {"model": ReadinessPublic}})
async def readyz(request: Request) -> JSONResponse:
    """Ready when the store answers, takes writes and is migrated; 503 otherwise. Answers
    within 2 s whatever the store does; probes it at most once a second."""
    readiness: Readiness = request.app.state.readiness
    problem = await readiness.problem()
    if problem is not None:
        return JSONResponse({"status": "unavailable", "store": problem}, status_code=503)
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
