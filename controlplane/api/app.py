"""The FastAPI application factory: wires settings, the store, metrics, errors and routers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from controlplane import __version__
from controlplane.api import document, errors
from controlplane.api.metrics import LatencyMiddleware, Metrics
from controlplane.api.routes import (
    automation,
    cost,
    health,
    incidents,
    maintenance,
    notifications,
    otlp,
    overview,
    policies,
    reports,
    signals,
    silences,
    slos,
    tokens,
    webhooks,
)
from controlplane.api.server import BodyDeadline
from controlplane.auth import TokenCache
from controlplane.collectors.traces import SpanIndex
from controlplane.config import Settings
from controlplane.incidents.writer import IntakeWriter
from controlplane.storage import Database, masked, upgrade
from controlplane.worker import start_loops

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    """Build the app. Pass `db` to share an engine (tests); otherwise one is made from settings."""
    db = db or Database(
        settings.database.url,
        pool_size=settings.database.pool_size,
        echo=settings.database.echo,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.database.migrate_on_start:
            upgrade(settings.database.url)
        writer.start()
        stop = asyncio.Event()
        loops = start_loops(settings, db, stop) if settings.api.run_loops else []
        app.state.loops = [task.get_name() for task in loops]
        log.info("control plane %s serving on %s", __version__, masked(settings.database.url))
        yield
        stop.set()
        await asyncio.gather(*loops)
        writer.stop()  # answers every notification already accepted for processing
        db.dispose()

    app = FastAPI(
        title="AIOps control plane",
        version=__version__,
        summary="From metrics and alerts to a safe, verified fix.",
        lifespan=lifespan,
        docs_url=None,  # served by `_offline_docs`: FastAPI's default pulls Swagger UI from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.loops = []
    app.state.metrics = Metrics(db, member_ttl_seconds=settings.coordination.member_ttl_seconds)
    app.state.token_cache = TokenCache()
    app.state.span_index = SpanIndex()
    app.state.intake_writer = writer = IntakeWriter(
        db, group_by=settings.incidents.group_by, flap_seconds=settings.incidents.flap_seconds
    )
    app.state.readiness = health.Readiness(db)
    errors.install(app)
    app.add_middleware(BodyDeadline, timeout=settings.api.body_timeout_seconds)
    app.add_middleware(LatencyMiddleware, metrics=app.state.metrics)

    api = APIRouter(prefix=API_PREFIX)
    routers = (webhooks, incidents, signals, reports, automation, policies, overview, tokens)
    for module in (*routers, notifications, silences, maintenance, slos, cost):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(otlp.router)
    app.include_router(health.router)
    _offline_docs(app)
    document.install(app)
    return app


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs with its assets from the `swagger-ui-py` package (Swagger UI 5,
    which reads OpenAPI 3.1), so the page works on a machine without internet."""
    assets = Path(str(files("swagger_ui").joinpath("static")))
    app.mount("/docs/assets", StaticFiles(directory=assets), name="swagger-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )
