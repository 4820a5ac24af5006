"""The demo shop's requests, as traces: the real OpenTelemetry SDK exports them over OTLP/HTTP
to the control plane's `/v1/traces`, as the shop's services would, so the dependency graph
and the span-derived RED series appear without anyone posting spans by hand.

Every `interval` seconds a few storefront requests run: `frontend` calls `checkout`, which
calls `payments` and `inventory`; `frontend` also calls `search`. Spans carry explicit times
drawn around the live shop's latency gauges (checkout gets faster as it gets replicas), so
nothing sleeps; a share of payments calls fail while its bad release is out. The frontend's
server spans carry the HTTP attributes security detection reads (status, client address,
path, user agent); for its first `attack_seconds` a credential-stuffing client tries a login
a second and is refused.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

SERVICES = ("frontend", "checkout", "payments", "inventory", "search")
SHOPPERS = tuple(f"10.0.0.{n}" for n in range(1, 31))
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
ATTACKER = "203.0.113.7"
#: Share of payments calls that fail (its release 1.1 is the one that went wrong).
PAYMENTS_ERRORS = 0.07
MS = 1_000_000  # nanoseconds

Latency = Callable[[str], float]  # seconds, per service


class ShopTraffic:
    """Storefront requests on a background thread while in a `with` block."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        latency: Latency,
        *,
        interval: float = 1.0,
        requests: int = 5,
        seed: int = 11,
        attack_seconds: float = 0.0,
    ) -> None:
        self.latency, self.interval, self.requests = latency, interval, requests
        self.attack_until = time.monotonic() + attack_seconds
        self.rng = random.Random(seed)
        headers = {"Authorization": f"Bearer {token}"}
        self.providers = {
            name: _provider(name, OTLPSpanExporter(endpoint=endpoint, headers=headers))
            for name in SERVICES
        }
        self.tracers = {name: p.get_tracer("aiops-demo-shop") for name, p in self.providers.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-traffic", daemon=True)

    def __enter__(self) -> ShopTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for provider in self.providers.values():
            provider.shutdown()  # flushes what is batched

    def flush(self) -> None:
        for provider in self.providers.values():
            provider.force_flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for _ in range(self.requests):
                self.storefront()
            if time.monotonic() < self.attack_until:
                self.login_attempt(ATTACKER, refused=True)

    def login_attempt(self, client: str, *, refused: bool) -> None:
        """A `POST /login` served by the frontend (401 when `refused`)."""
        start = time.time_ns() - 30 * MS
        attributes = _http(client, "/login", 401 if refused else 200, "python-requests/2.32")
        span = self.tracers["frontend"].start_span(
            "POST /login", kind=SpanKind.SERVER, start_time=start, attributes=attributes
        )
        span.end(end_time=start + 20 * MS)

    def storefront(self) -> None:
        """One page view, timed on the shop's latency gauges: a checkout (which charges a
        payment and reserves stock) and a search, each a client span in the caller and a
        server span in the callee."""
        checkout = self._seconds("checkout")
        search = self._seconds("search")
        total = checkout + search + 0.01
        start = time.time_ns() - int(total * 1e9)  # the request just finished
        with self._span("frontend", "GET /cart", SpanKind.SERVER, start, total, None) as root:
            root.set_attributes(_http(self.rng.choice(SHOPPERS), "/cart", 200, BROWSER))
            page = trace.set_span_in_context(root)
            at = start + MS
            with self._remote("frontend", "checkout", "POST /checkout", at, checkout, page) as c:
                inner = trace.set_span_in_context(c)
                charge = self._seconds("payments")
                with self._remote(
                    "checkout", "payments", "POST /charge", at + MS, charge, inner
                ) as p:
                    if self.rng.random() < PAYMENTS_ERRORS:
                        p.set_status(Status(StatusCode.ERROR, "card processor 502"))
                stock = at + 2 * MS + int(charge * 1e9)
                reserve = self._seconds("inventory")
                with self._remote("checkout", "inventory", "POST /reserve", stock, reserve, inner):
                    pass
            at += int(checkout * 1e9) + MS
            with self._remote("frontend", "search", "GET /search", at, search, page):
                pass

    @contextmanager
    def _span(
        self,
        service: str,
        name: str,
        kind: SpanKind,
        start: int,
        seconds: float,
        parent: Context | None,
    ) -> Iterator[trace.Span]:
        span = self.tracers[service].start_span(name, parent, kind=kind, start_time=start)
        try:
            yield span
        finally:
            span.end(end_time=start + int(seconds * 1e9))

    @contextmanager
    def _remote(
        self, caller: str, callee: str, name: str, start: int, seconds: float, parent: Context
    ) -> Iterator[trace.Span]:
        """A client span in `caller` and the server span it causes in `callee`; yields the
        server span (the callee's own calls are its children)."""
        with self._span(caller, f"{name} ({callee})", SpanKind.CLIENT, start, seconds, parent) as c:
            context = trace.set_span_in_context(c)
            served = seconds * 0.95
            with self._span(callee, name, SpanKind.SERVER, start + MS // 2, served, context) as h:
                yield h

    def _seconds(self, service: str) -> float:
        return max(0.001, self.latency(service) * self.rng.uniform(0.6, 1.1))


def _http(client: str, path: str, status: int, agent: str) -> dict[str, str | int]:
    """A server span's HTTP attributes (OpenTelemetry semantic conventions)."""
    return {
        "http.request.method": "POST" if path == "/login" else "GET",
        "url.path": path,
        "http.response.status_code": status,
        "client.address": client,
        "user_agent.original": agent,
    }


def _provider(service: str, exporter: OTLPSpanExporter) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=2000))
    return provider
