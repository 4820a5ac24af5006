"""Traces: OTLP spans -> per-minute RED series and a service dependency graph.

Owns span aggregation. Nothing stores spans: each OTLP request is folded into per-minute rows
(requests, errors, a latency histogram per service and operation; calls and errors per
caller -> callee edge) and merged into the store, so memory and storage grow with services x
operations x minutes, not with traffic. Percentiles come from the merged histograms.

An edge is a parent/child span pair whose services differ. A child usually ends, and is
exported, before its parent and by another process; `SpanIndex` remembers recent span ids ->
service, and children waiting for their parent, in bounded LRU maps. With several API replicas
an edge is only seen when both spans reach the same replica.
"""

from __future__ import annotations

import base64
import bisect
import json
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from controlplane.domain.errors import InvalidInputError
from controlplane.domain.series import MetricSeries
from controlplane.domain.storable import storable_text
from controlplane.storage.models import AccessPointRow, RedPointRow, ServiceEdgeRow

# Upper bounds of the latency buckets in milliseconds; the last bucket is open.
LATENCY_BOUNDS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000)
STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
RED_METRICS = ("rate", "error_ratio", "p50", "p95", "p99")
TRACE_LOCK_KEY = 0x7472616365  # "trace"


def parse_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """Decode an OTLP/HTTP body (protobuf, or JSON with hex trace and span ids)."""
    request = ExportTraceServiceRequest()
    try:
        if content_type.startswith("application/json"):
            document = json.loads(body)
            _hex_ids_to_base64(document)
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(body)
    except (ValueError, json_format.ParseError, UnicodeDecodeError, DecodeError) as exc:
        raise InvalidInputError(f"body: not a valid OTLP trace export: {exc}") from None
    except RecursionError:
        raise InvalidInputError("body: nested too deeply to be an OTLP trace export") from None
    return request


def _hex_ids_to_base64(document: object) -> None:
    # OTLP/JSON writes ids as hex; protobuf's JSON mapping expects base64 for bytes fields.
    if isinstance(document, dict):
        for key in ("traceId", "spanId", "parentSpanId"):
            value = document.get(key)
            if isinstance(value, str) and value:
                try:
                    document[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise InvalidInputError(f"{key}: not a hex id, got {value!r}") from None
        for child in document.values():
            _hex_ids_to_base64(child)
    elif isinstance(document, list):
        for child in document:
            _hex_ids_to_base64(child)


@dataclass
class Aggregate:
    """One request's spans, folded: (service, operation, minute) and (caller, callee, minute)."""

    red: dict[tuple[str, str, datetime], list[int]] = field(default_factory=dict)
    edges: dict[tuple[str, str, datetime], list[int]] = field(default_factory=dict)
    #: (service, route, client, minute) -> [requests, denied, throttled], and the user agent.
    access: dict[tuple[str, str, str, datetime], list[int]] = field(default_factory=dict)
    agents: dict[tuple[str, str, str, datetime], str] = field(default_factory=dict)
    spans: int = 0
    #: Children that waited for a parent span that never came, forgotten to bound memory.
    orphans_dropped: int = 0

    def add_span(self, service: str, operation: str, end_ns: int, ms: float, error: bool) -> None:
        cell = self.red.setdefault((service, operation, _minute(end_ns)), _empty_cell())
        cell[0] += 1
        cell[1] += int(error)
        cell[2 + bisect.bisect_left(LATENCY_BOUNDS_MS, ms)] += 1
        self.spans += 1

    def add_access(self, service: str, access: HttpAccess, end_ns: int) -> None:
        """A server span's HTTP request: who asked for what, was it refused, and did a
        route of the service match it."""
        key = (service, access.path, access.client, _minute(end_ns))
        cell = self.access.setdefault(key, [0, 0, 0, 0])
        cell[0] += 1
        cell[1] += int(access.status in (401, 403))
        cell[2] += int(access.status == 429)
        cell[3] += int(not access.routed)
        self.agents.setdefault(key, access.agent)

    def add_edge(self, caller: str, callee: str, end_ns: int, error: bool) -> None:
        cell = self.edges.setdefault((caller, callee, _minute(end_ns)), [0, 0])
        cell[0] += 1
        cell[1] += int(error)


def _empty_cell() -> list[int]:
    return [0, 0] + [0] * (len(LATENCY_BOUNDS_MS) + 1)


def _minute(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 60_000_000_000 * 60, UTC)


class SpanIndex:
    """Bounded memory of recent spans (id -> service) and of children awaiting their parent:
    at most `capacity` span ids and `capacity` waiting children in all (whatever parents they
    name); beyond that the oldest are forgotten and counted in `Aggregate.orphans_dropped`."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self.services: OrderedDict[bytes, str] = OrderedDict()
        self.waiting: OrderedDict[bytes, list[tuple[str, int, bool]]] = OrderedDict()
        self.children_waiting = 0

    def aggregate(self, request: ExportTraceServiceRequest) -> Aggregate:
        """Fold a request's spans; InvalidInputError (nothing remembered) when a name cannot
        be stored."""
        out = Aggregate()
        spans = []
        for r, resource_spans in enumerate(request.resource_spans):
            service = _service_name(resource_spans.resource.attributes)
            _check_name(f"resourceSpans.{r}.resource.service.name", service)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    _check_name(f"resourceSpans.{r}.span.name", span.name)
                    spans.append((service, span))
        for service, span in spans:  # all first: a parent may come after its child
            self._remember(span.span_id, service)
        for service, span in spans:
            error = span.status.code == STATUS_ERROR
            ms = max(0.0, (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6)
            out.add_span(service, span.name, span.end_time_unix_nano, ms, error)
            access = _access(span)
            if access is not None:
                out.add_access(service, access, span.end_time_unix_nano)
            children = self.waiting.pop(span.span_id, [])
            self.children_waiting -= len(children)
            for child_service, end_ns, child_error in children:
                if child_service != service:
                    out.add_edge(service, child_service, end_ns, child_error)
            if span.parent_span_id:
                parent = self.services.get(span.parent_span_id)
                if parent is None:
                    child = (service, span.end_time_unix_nano, error)
                    out.orphans_dropped += self._wait(span.parent_span_id, child)
                elif parent != service:
                    out.add_edge(parent, service, span.end_time_unix_nano, error)
        return out

    def _remember(self, span_id: bytes, service: str) -> None:
        self.services[span_id] = service
        if len(self.services) > self.capacity:
            self.services.popitem(last=False)

    def _wait(self, parent_id: bytes, child: tuple[str, int, bool]) -> int:
        """Keep a child until its parent arrives; how many waiting children were forgotten."""
        self.waiting.setdefault(parent_id, []).append(child)
        self.children_waiting += 1
        dropped = 0
        while self.children_waiting > self.capacity:
            _, children = self.waiting.popitem(last=False)
            self.children_waiting -= len(children)
            dropped += len(children)
        return dropped


def _check_name(field_name: str, value: str) -> None:
    """Service and span names become 255-character columns."""
    try:
        storable_text(value)
    except ValueError as exc:
        raise InvalidInputError(f"{field_name}: {exc}, got {value[:80]!r}") from None
    if len(value) > 255:
        raise InvalidInputError(
            f"{field_name}: at most 255 characters, got {len(value)}: {value[:40]!r}..."
        )


#: OpenTelemetry semantic conventions (HTTP server spans), current names then the old ones.
_STATUS = ("http.response.status_code", "http.status_code")
_PATH = ("url.path", "http.target", "http.route")  # the path itself: scrapers vary it
_CLIENT = ("client.address", "net.peer.ip", "http.client_ip")
_AGENT = ("user_agent.original", "http.user_agent")


@dataclass(frozen=True)
class HttpAccess:
    """An HTTP server span's request: the path, who asked, with what, the answer's status,
    and whether a route of the service matched it (`http.route` is set only then)."""

    path: str
    client: str
    agent: str
    status: int
    routed: bool


def _access(span: Any) -> HttpAccess | None:
    """The request of an HTTP server span that names its client."""
    values = {a.key: a.value for a in span.attributes}

    def first(keys: tuple[str, ...]) -> Any:
        return next((values[k] for k in keys if k in values), None)

    status, client = first(_STATUS), first(_CLIENT)
    if status is None or client is None:
        return None
    path, agent = first(_PATH), first(_AGENT)
    text = [_short(v.string_value) if v is not None else "-" for v in (path, client, agent)]
    try:
        code = int(status.int_value or status.string_value or 0)
    except ValueError:
        return None  # a status that is not a number: not an HTTP answer to count
    return HttpAccess(text[0], text[1], text[2], code, "http.route" in values)


def _short(value: str) -> str:
    """A storable name of at most 255 characters (attacker-chosen text: never refused)."""
    cleaned = "".join(c for c in value if c.isprintable())[:255]
    try:
        storable_text(cleaned)
    except ValueError:
        return "-"
    return cleaned or "-"


def _service_name(attributes: object) -> str:
    for attribute in attributes:  # type: ignore[attr-defined]
        if attribute.key == "service.name":
            return str(attribute.value.string_value) or "unknown_service"
    return "unknown_service"


def store(session: Session, aggregate: Aggregate) -> None:
    """Merge an aggregate into the per-minute rows (read, add, write; inside the caller's tx).

    On PostgreSQL a transaction-scoped advisory lock serialises these merges across API
    replicas, so two exports of the same minute never race to insert the same row.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": TRACE_LOCK_KEY})
    _merge(
        session, RedPointRow, ("service", "operation", "minute"), aggregate.red, _new_red, _add_red
    )
    _merge(
        session,
        ServiceEdgeRow,
        ("caller", "callee", "minute"),
        aggregate.edges,
        _new_edge,
        _add_edge,
    )
    _merge_access(session, aggregate)


def _merge_access(session: Session, aggregate: Aggregate) -> None:
    if not aggregate.access:
        return
    existing = {
        (row.service, row.route, row.client, row.minute): row
        for row in session.scalars(
            select(AccessPointRow).where(
                AccessPointRow.client.in_({k[2] for k in aggregate.access}),
                AccessPointRow.minute.in_({k[3] for k in aggregate.access}),
            )
        )
    }
    for key, (requests, denied, throttled, unrouted) in aggregate.access.items():
        row = existing.get(key)
        if row is None:
            service, route, client, minute = key
            session.add(
                AccessPointRow(
                    service=service,
                    route=route,
                    client=client,
                    minute=minute,
                    requests=requests,
                    denied=denied,
                    throttled=throttled,
                    unrouted=unrouted,
                    user_agent=aggregate.agents[key],
                )
            )
        else:
            row.requests += requests
            row.denied += denied
            row.throttled += throttled
            row.unrouted += unrouted


def _merge(
    session: Session,
    model: type[RedPointRow] | type[ServiceEdgeRow],
    key_columns: tuple[str, str, str],
    cells: dict[tuple[str, str, datetime], list[int]],
    new: Callable[[tuple[str, str, datetime], list[int]], Any],
    add: Callable[[Any, list[int]], None],
) -> None:
    """Add each cell to its row (keyed by `key_columns`), or insert the row."""
    if not cells:
        return
    first, _, minute = (getattr(model, c) for c in key_columns)
    existing = {
        tuple(getattr(row, c) for c in key_columns): row
        for row in session.scalars(
            select(model).where(first.in_({k[0] for k in cells}), minute.in_({k[2] for k in cells}))
        )
    }
    for key, cell in cells.items():
        row = existing.get(key)
        if row is None:
            session.add(new(key, cell))
        else:
            add(row, cell)


def _new_red(key: tuple[str, str, datetime], cell: list[int]) -> RedPointRow:
    service, operation, minute = key
    return RedPointRow(
        service=service,
        operation=operation,
        minute=minute,
        requests=cell[0],
        errors=cell[1],
        latency_buckets={"counts": cell[2:]},
    )


def _add_red(row: RedPointRow, cell: list[int]) -> None:
    row.requests += cell[0]
    row.errors += cell[1]
    counts = row.latency_buckets["counts"]
    # A new dict, so the JSON column is seen as changed.
    row.latency_buckets = {"counts": [a + b for a, b in zip(counts, cell[2:], strict=True)]}


def _new_edge(key: tuple[str, str, datetime], cell: list[int]) -> ServiceEdgeRow:
    caller, callee, minute = key
    return ServiceEdgeRow(
        caller=caller, callee=callee, minute=minute, calls=cell[0], errors=cell[1]
    )


def _add_edge(row: ServiceEdgeRow, cell: list[int]) -> None:
    row.calls += cell[0]
    row.errors += cell[1]


def percentile(counts: list[int], q: float) -> float:
    """The q-quantile (0..1) in ms, interpolated inside its histogram bucket."""
    total = sum(counts)
    if total == 0:
        return math.nan
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = LATENCY_BOUNDS_MS[i - 1] if i > 0 else 0.0
            upper = LATENCY_BOUNDS_MS[i] if i < len(LATENCY_BOUNDS_MS) else lower * 2
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return float(LATENCY_BOUNDS_MS[-1])


def red_series(
    session: Session,
    service: str,
    metric: str,
    start: datetime,
    end: datetime,
    operation: str | None = None,
) -> MetricSeries:
    """A per-minute RED series of a service (all operations, or one) over [start, end]."""
    if metric not in RED_METRICS:
        raise InvalidInputError(f"metric must be one of {RED_METRICS}, got {metric!r}")
    query = select(RedPointRow).where(
        RedPointRow.service == service, RedPointRow.minute >= start, RedPointRow.minute <= end
    )
    if operation is not None:
        query = query.where(RedPointRow.operation == operation)
    minutes: dict[datetime, list[int]] = {}
    for row in session.scalars(query.order_by(RedPointRow.minute)):
        cell = minutes.setdefault(row.minute, _empty_cell())
        cell[0] += row.requests
        cell[1] += row.errors
        for i, count in enumerate(row.latency_buckets["counts"]):
            cell[2 + i] += count
    stamps = np.array([m.replace(tzinfo=None) for m in minutes], dtype="datetime64[ns]")
    values = np.array([_red_value(metric, c) for c in minutes.values()], dtype=np.float64)
    labels = {"service": service, "metric": metric}
    return MetricSeries(f"traces:{service}:{metric}", stamps, values, labels)


def _red_value(metric: str, cell: list[int]) -> float:
    if metric == "rate":
        return cell[0] / 60.0
    if metric == "error_ratio":
        return cell[1] / cell[0] if cell[0] else math.nan
    return percentile(cell[2:], int(metric[1:]) / 100)


@dataclass(frozen=True)
class Edge:
    caller: str
    callee: str
    calls: int
    errors: int


def dependency_graph(session: Session, since: datetime) -> list[Edge]:
    """Caller -> callee edges seen since `since`, with call and error counts."""
    totals: dict[tuple[str, str], list[int]] = {}
    for row in session.scalars(select(ServiceEdgeRow).where(ServiceEdgeRow.minute >= since)):
        cell = totals.setdefault((row.caller, row.callee), [0, 0])
        cell[0] += row.calls
        cell[1] += row.errors
    return [Edge(a, b, c, e) for (a, b), (c, e) in sorted(totals.items())]
