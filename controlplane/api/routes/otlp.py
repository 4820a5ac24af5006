"""`POST /v1/traces`: the OTLP/HTTP trace receiver (protobuf or JSON, optionally gzip).

Authenticated like the Alertmanager webhook (a webhook-role token or `auth.webhook_token`).
Spans are folded into per-minute RED rows and service edges (see `collectors.traces`) and
committed before the answer, which is an `ExportTraceServiceResponse` in the request's
encoding. Malformed bodies get 400 naming the problem; nothing is stored.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from controlplane.api.deps import DbDep, SettingsDep, authenticated, check_role
from controlplane.api.errors import ApiError
from controlplane.api.routes.webhooks import read_body, rejected, within_deadline
from controlplane.api.schemas import error_responses, media
from controlplane.collectors import traces
from controlplane.domain.errors import InvalidInputError
from controlplane.domain.models import Principal, Role

router = APIRouter(tags=["traces"])
# Decompressed bodies may be this many times api.max_body_bytes (spans compress ~10x).
GZIP_EXPANSION = 16


async def _sender(request: Request, db: DbDep, settings: SettingsDep) -> Principal:
    return check_role(await authenticated(request, db, settings), Role.WEBHOOK)


@router.post(
    "/v1/traces",
    summary="Receive spans (OTLP/HTTP, protobuf or JSON)",
    response_class=Response,
    responses={
        **media(
            "ExportTraceServiceResponse, in the request's encoding",
            "application/x-protobuf",
            "application/json",
        ),
        **error_responses(400, 401, 403, 413, 415, 422, 503),
    },
)
async def receive_traces(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    _: Annotated[Principal, Depends(_sender)],
) -> Response:
    limit = settings.api.max_body_bytes
    body = await read_body(request, limit)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        body = _gunzip(body, limit * GZIP_EXPANSION)
    content_type = request.headers.get("content-type", "application/x-protobuf").lower()
    if not content_type.startswith(("application/x-protobuf", "application/json")):
        raise rejected(415, "unsupported_media_type", f"content-type: {content_type!r}")
    index: traces.SpanIndex = request.app.state.span_index
    try:
        parsed = traces.parse_request(body, content_type)
        aggregate = index.aggregate(parsed)
    except InvalidInputError as exc:
        raise rejected(400, "invalid_otlp", str(exc)) from None
    await within_deadline(asyncio.to_thread(_store, db, aggregate), settings)
    request.app.state.metrics.spans.inc(aggregate.spans)
    request.app.state.metrics.orphans_dropped.inc(aggregate.orphans_dropped)
    if content_type.startswith("application/json"):
        return Response("{}", media_type="application/json")
    return Response(
        ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf"
    )


def _store(db: DbDep, aggregate: traces.Aggregate) -> None:
    with db.write() as session:
        traces.store(session, aggregate)


def _gunzip(body: bytes, limit: int) -> bytes:
    """Every member of a gzip body (RFC 1952 allows several, concatenated), at most `limit`
    bytes in all."""
    out, rest = bytearray(), body
    while rest:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += decompressor.decompress(rest, limit + 1 - len(out))
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise rejected(400, "invalid_gzip", f"body: not valid gzip: {exc}") from None
        if len(out) > limit or decompressor.unconsumed_tail:
            raise rejected(413, "too_large", f"body: more than {limit} bytes once decompressed")
        if not decompressor.eof:
            raise rejected(400, "invalid_gzip", "body: gzip member cut short")
        rest = decompressor.unused_data
    return bytes(out)


__all__ = ["ApiError", "router"]
