"""Maps the error tree and validation failures onto HTTP answers with one envelope:
`{"detail": "...", "errors": [{"field": "alerts.0.startsAt", "message": "...", "value": ...}]}`.

Every answer is that envelope, a 500 included (its detail says to read the log; the
exception is logged, never echoed). A URL holding NUL is refused before any route, and JSON
nested deeper than the parser goes is a 400: both would otherwise surface as 500s.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from controlplane.domain.errors import (
    ConflictError,
    ControlPlaneError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    TemporaryError,
)

_MAX_ECHO = 200
log = logging.getLogger(__name__)


class BodyTooSlowError(Exception):
    """The client stopped sending its request body (`server.BodyDeadline`): 408."""


class ApiError(Exception):
    """An HTTP error raised by the API layer itself (auth, body size, JSON syntax)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
        reason: str = "error",
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.errors, self.headers = status, detail, errors, headers
        self.reason = reason  # a short machine word, used as a metrics label


def field_errors(
    errors: Iterable[Any], *, skip_prefix: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Pydantic errors as {field, message, value}, with the field path dotted."""
    out = []
    for error in errors:
        loc = [str(p) for p in error["loc"] if str(p) not in skip_prefix]
        value = error.get("input")
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if isinstance(value, str) and len(value) > _MAX_ECHO:
            value = value[:_MAX_ECHO] + "..."
        elif isinstance(value, dict | list):
            value = f"<{type(value).__name__} with {len(value)} items>"
        elif isinstance(value, float) and not math.isfinite(value):
            value = str(value)  # NaN and Infinity are not JSON
        elif not isinstance(value, str | int | float | bool | None):
            value = str(value)  # e.g. a datetime: the envelope must stay JSON
        out.append({"field": ".".join(loc) or "body", "message": error["msg"], "value": value})
    return out


def summary(errors: list[dict[str, Any]]) -> str:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first['field']}: {first['message']}, got {first['value']!r}{more}"


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ValidationError, _request_validation)
    app.add_exception_handler(ControlPlaneError, _control_plane_error)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RecursionError, _too_deep)
    app.add_exception_handler(BodyTooSlowError, _too_slow)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(RefuseNul)


class Envelope(JSONResponse):
    """The error envelope, written as ASCII JSON: an echoed value may hold what UTF-8 cannot
    encode (a lone surrogate), and it must still reach the sender as an answer."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


def _body(
    status: int,
    detail: str,
    errors: Sequence[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return Envelope({"detail": detail, "errors": list(errors)}, status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _body(exc.status, exc.detail, exc.errors, exc.headers)


async def _request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | ValidationError)
    errors = field_errors(exc.errors(), skip_prefix=("body", "query", "path"))
    return _body(422, summary(errors), errors)


async def _http_exception(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return _body(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))


async def _too_deep(_: Request, exc: Exception) -> JSONResponse:
    return _body(400, "body: JSON nested too deeply", [_error("body", "nested too deeply")])


async def _too_slow(_: Request, exc: Exception) -> JSONResponse:
    return _body(408, str(exc), [_error("body", str(exc))], headers={"Connection": "close"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _body(500, "internal error: the control plane's log has the details")


def _error(field: str, message: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "message": message, "value": value}


class RefuseNul:
    """400 for a URL whose path or query holds NUL (`%00`): no text column can store it, and
    PostgreSQL refuses it even as a filter."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _holds_nul(scope):
            detail = "URL: must not contain the NUL character (%00)"
            response = _body(400, detail, [_error("url", "must not contain NUL")])
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _holds_nul(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    raw: bytes = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
    return b"%00" in query.lower() or b"%00" in raw.lower() or "\x00" in scope.get("path", "")


async def _control_plane_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, NotFoundError):
        return _body(404, str(exc))
    if isinstance(exc, ConflictError):
        return _body(409, str(exc))
    if isinstance(exc, TemporaryError):
        return _body(503, str(exc), headers={"Retry-After": str(max(1, round(exc.delay)))})
    if isinstance(exc, PermanentError | InvalidInputError):
        return _body(422, str(exc))
    return await _unexpected(request, exc)
