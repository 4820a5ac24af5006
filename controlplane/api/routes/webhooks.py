"""`POST /api/v1/webhooks/alertmanager`: durable, idempotent intake of Alertmanager webhooks.

The contract with Alertmanager (which retries 5xx and network errors, and drops 4xx):
- 2xx only after the notification and its effects are committed;
- 4xx for input that can never succeed (bad token, body too large, malformed, or holding
  what no store can keep: see `domain.storable`), nothing stored;
- 503 + Retry-After when the store is unavailable, so Alertmanager retries and nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from controlplane.api.deps import DbDep, SettingsDep, authenticated, check_role
from controlplane.api.errors import ApiError, field_errors, summary
from controlplane.api.metrics import Metrics
from controlplane.api.schemas import WebhookAccepted, error_responses
from controlplane.config import Settings
from controlplane.domain.alertmanager import Notification
from controlplane.domain.errors import StoreUnavailableError, UnstorableError
from controlplane.domain.models import Principal, Role
from controlplane.incidents.intake import Delivery
from controlplane.incidents.writer import IntakeWriter

SOURCE = "alertmanager"
T = TypeVar("T")

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


async def _webhook_principal(request: Request, db: DbDep, settings: SettingsDep) -> Principal:
    """Authenticate as in every route, but count refusals as rejected notifications."""
    try:
        return check_role(await authenticated(request, db, settings), Role.WEBHOOK)
    except ApiError:
        _metrics(request).rejected.labels(SOURCE, "unauthorized").inc()
        raise


@router.post(
    "/alertmanager",
    response_model=WebhookAccepted,
    responses=error_responses(400, 401, 403, 413, 422, 503),
    summary="Receive an Alertmanager notification (webhook version 4)",
)
async def alertmanager_webhook(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    _: Annotated[Principal, Depends(_webhook_principal)],
) -> WebhookAccepted:
    metrics = _metrics(request)
    try:
        body = await read_body(request, settings.api.max_body_bytes)
        payload, notification = _parse(body)
        writer: IntakeWriter = request.app.state.intake_writer
        pending = writer.submit(Delivery.of(body, payload, notification))
        result = await within_deadline(asyncio.wrap_future(pending), settings)
    except ApiError as exc:
        metrics.rejected.labels(SOURCE, exc.reason).inc()
        raise
    except StoreUnavailableError:
        metrics.rejected.labels(SOURCE, "store_unavailable").inc()
        raise
    except UnstorableError:
        metrics.rejected.labels(SOURCE, "unstorable").inc()
        raise
    metrics.received.labels(SOURCE, "duplicate" if result.duplicate else "accepted").inc()
    return WebhookAccepted(
        notification_id=result.notification_id,
        duplicate=result.duplicate,
        opened=result.opened,
        updated=result.updated,
        resolved=result.resolved,
    )


async def within_deadline(work: Awaitable[T], settings: Settings) -> T:
    """`work`'s answer, or 503 + Retry-After once `api.request_deadline_seconds` pass (a
    store that stopped answering): the sender retries, and if the commit lands late after
    all, the retry is recognised as a duplicate. The work itself is not cancelled."""
    deadline = settings.api.request_deadline_seconds
    try:
        return await asyncio.wait_for(asyncio.shield(work), deadline)
    except TimeoutError:
        raise StoreUnavailableError(
            f"store unavailable: no answer within {deadline:g} s (api.request_deadline_seconds)",
            delay=settings.api.retry_after_seconds,
        ) from None


def rejected(status: int, reason: str, detail: str, value: Any = None) -> ApiError:
    errors = [{"field": "body", "message": detail, "value": value}]
    return ApiError(status, detail, errors=errors, reason=reason)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> ApiError:
    return rejected(
        413, "too_large", f"body: {size} bytes exceeds api.max_body_bytes={limit}", size
    )


def strict_json(body: bytes) -> Any:
    """The body as JSON, as RFC 8259 defines it: no NaN or Infinity (no store keeps them in
    JSON), and not nested deeper than the parser can go. Each failure is a 400."""
    try:
        return json.loads(body, parse_constant=_not_json)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise rejected(400, "invalid_json", f"body: not valid JSON: {exc}") from None
    except _NotJsonError as exc:
        raise rejected(400, "invalid_json", f"body: not valid JSON: {exc}", str(exc)) from None
    except RecursionError:
        raise rejected(400, "invalid_json", "body: JSON nested too deeply") from None


class _NotJsonError(ValueError):
    pass


def _not_json(constant: str) -> Any:
    raise _NotJsonError(f"{constant} is not a JSON value")


def _parse(body: bytes) -> tuple[dict[str, Any], Notification]:
    payload = strict_json(body)
    if not isinstance(payload, dict):
        raise rejected(
            422, "invalid_payload", f"body: must be a JSON object, got {type(payload).__name__}"
        )
    try:
        return payload, Notification.model_validate(payload)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        raise ApiError(422, summary(errors), errors=errors, reason="invalid_payload") from None


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics
