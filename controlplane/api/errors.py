"""Maps the error tree and validation failures onto HTTP answers with one envelope:
`{"detail": "...", "errors": [{"field": "alerts.0.startsAt", "message": "...", "value": ...}]}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from controlplane.domain.errors import (
    ConflictError,
    ControlPlaneError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    TemporaryError,
)

_MAX_ECHO = 200


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


def _body(
    status: int,
    detail: str,
    errors: Sequence[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse({"detail": detail, "errors": list(errors)}, status, headers=headers)


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


async def _control_plane_error(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, NotFoundError):
        return _body(404, str(exc))
    if isinstance(exc, ConflictError):
        return _body(409, str(exc))
    if isinstance(exc, TemporaryError):
        return _body(503, str(exc), headers={"Retry-After": str(max(1, round(exc.delay)))})
    if isinstance(exc, PermanentError | InvalidInputError):
        return _body(422, str(exc))
    return _body(500, str(exc))
