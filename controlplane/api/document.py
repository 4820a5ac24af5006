"""The OpenAPI document says what the API does, beyond what FastAPI infers:

- every 422 (and every other error) is the error envelope (`ErrorBody`), not FastAPI's
  `HTTPValidationError`, which this API never sends;
- the request bodies of the routes that read their body raw (the Alertmanager webhook, for
  its digest and strict JSON; OTLP, protobuf or JSON) are declared, so clients and fuzzers
  know them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from controlplane.domain.alertmanager import Notification

ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
WEBHOOK = "/api/v1/webhooks/alertmanager"
OTLP = "/v1/traces"


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    for operations in doc["paths"].values():
        for operation in operations.values():
            invalid = operation.get("responses", {}).get("422")
            if invalid is not None:
                invalid["content"] = ENVELOPE
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)

    notification = Notification.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    schemas.update(notification.pop("$defs", {}))
    schemas["Notification"] = notification
    doc["paths"][WEBHOOK]["post"]["requestBody"] = {
        "required": True,
        "description": "An Alertmanager webhook notification (version 4).",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Notification"}}},
    }
    doc["paths"][OTLP]["post"]["requestBody"] = {
        "required": True,
        "description": "An OTLP ExportTraceServiceRequest (optionally gzip-encoded).",
        "content": {
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
    return doc
