"""The HTTP API (FastAPI): `/api/v1/...`, `/healthz`, `/readyz`, `/metrics`, `/docs`."""

from controlplane.api.app import API_PREFIX, create_app

__all__ = ["API_PREFIX", "create_app"]
