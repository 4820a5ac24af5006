"""The demo shop, live: a `/metrics` endpoint on loopback that the demo's Prometheus scrapes,
so the demo's signals get new points and its policies' verify queries have data to judge.

It serves the capacity gauges (continuing the backfilled history's curves) and two gauges
the self-healing story turns on:

- `demo_latency_p95_seconds`: checkout's p95 falls as it gets replicas (its load is shared
  by the replicas the Kubernetes stand-in holds): 1.2 s with the 3 it starts with, under the
  0.8 s SLO with 5, so an approved scale-out verifies;
- `demo_restarts_per_minute`: search crash-loops on a bad configuration that a restart does
  not fix, so its automatic restart fails verification and is rolled back (visibly);
- `demo_error_ratio`: the storefront runs in two zones behind one HTTPRoute. Zone a is
  degraded; zone b is healthy up to the share of traffic its pods can carry and fails more
  and more past it, so a shift to zone b holds at half and is rolled back from all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from controlplane.demo import capacity
from controlplane.testing.kube import serve_in_thread, stop_serving

#: checkout's p95 latency (seconds) is BASE + LOAD / replicas.
LATENCY_BASE, LATENCY_LOAD = 0.15, 3.15
SLO_SECONDS = 0.8
CRASH_RESTARTS_PER_MINUTE = 4.0
OTHER_LATENCY = {"payments": 0.21, "search": 0.12, "inventory": 0.09}
FRONTEND_LATENCY = 0.02
#: Share of storefront requests failing in the degraded zone a.
ZONE_A_ERRORS = 0.04
#: Zone b fails ZONE_B_ERRORS of requests up to ZONE_B_CAPACITY of all traffic; past it, each
#: further point of share adds OVERLOAD_ERRORS points of error ratio (all of it: 10%).
ZONE_B_ERRORS, ZONE_B_CAPACITY, OVERLOAD_ERRORS = 0.002, 0.6, 0.25

Replicas = Callable[[str], int | None]
#: What share of the storefront's traffic zone b gets now (from the HTTPRoute's weights).
Share = Callable[[], float]


class LiveShop:
    """The shop's current gauges, served as Prometheus text while in a `with` block."""

    def __init__(
        self,
        replicas: Replicas,
        *,
        history_end: datetime,
        zone_b_share: Share = lambda: 0.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.replicas, self.zone_b_share, self.clock = replicas, zone_b_share, clock
        self.origin = capacity.history_start(history_end)
        self.rng = np.random.default_rng()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    @property
    def target(self) -> str:
        """host:port, as a Prometheus scrape config names it."""
        return self.url.removeprefix("http://")

    def __enter__(self) -> LiveShop:
        self._server, self.url = serve_in_thread(
            type("Handler", (_MetricsHandler,), {"shop": self})
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            stop_serving(self._server)

    def gauges(self) -> dict[tuple[str, str], float]:
        days = np.array([(self.clock() - self.origin).total_seconds() / 86_400])
        now = {key: float(values[0]) for key, values in capacity.levels(days, self.rng).items()}
        for service in ("checkout", *OTHER_LATENCY):
            now["demo_latency_p95_seconds", service] = self.latency(service)
        now["demo_restarts_per_minute", "search"] = CRASH_RESTARTS_PER_MINUTE
        now["demo_error_ratio", "frontend-a"] = ZONE_A_ERRORS
        overload = max(0.0, self.zone_b_share() - ZONE_B_CAPACITY)
        now["demo_error_ratio", "frontend-b"] = ZONE_B_ERRORS + OVERLOAD_ERRORS * overload
        return now

    def latency(self, service: str) -> float:
        """A service's p95 latency now, seconds (what the demo's traces are timed on)."""
        if service == "checkout":
            return LATENCY_BASE + LATENCY_LOAD / max(1, self.replicas("checkout") or 1)
        return OTHER_LATENCY.get(service, FRONTEND_LATENCY)

    def exposition(self) -> str:
        lines: list[str] = []
        family = None
        for (metric, service), value in sorted(self.gauges().items()):  # families contiguous
            if metric != family:
                lines.append(f"# TYPE {metric} gauge")
                family = metric
            lines.append(f'{metric}{{service="{service}"}} {value:.10g}')
        return "\n".join(lines) + "\n"


class _MetricsHandler(BaseHTTPRequestHandler):
    shop: LiveShop
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        return

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        body = self.shop.exposition().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
