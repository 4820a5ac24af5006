"""The control plane's own Prometheus metrics, on a registry per app (tests build many apps).

- `aiops_notifications_received_total{source,outcome}`: accepted / duplicate
- `aiops_notifications_rejected_total{source,reason}`: unauthorized, too_large, invalid_json,
  invalid_payload, store_unavailable
- `aiops_spans_received_total`, `aiops_spans_orphans_dropped_total`: spans on /v1/traces, and
  those forgotten while waiting for a parent that never came (memory is bounded)
- `aiops_incidents{status}`: current incidents by status, counted at scrape time
- `aiops_http_request_duration_seconds{method,route,status}`: request latency histogram
- from the store, about the processes running loops (which serve no HTTP themselves):
  `aiops_workers_live`, `aiops_signals_unowned` (no live worker scores them),
  `aiops_detection_lag_seconds` (since the least recently scored signal was scored),
  `aiops_lease_expires_in_seconds{lease}` and `aiops_lease_token{lease}` (grows with every
  takeover). deploy/base/prometheusrule.yaml alerts on them.
- per detection signal, in the names vmanomaly writes (so vmalert/Prometheus rules and Grafana
  dashboards made for vmanomaly work unchanged), labelled `for` (vmanomaly's query alias: the
  signal's name), `signal` and `service`: `anomaly_score` (the detector's score of the last
  point; an anomaly at >= detection.threshold), `y` (its value), `yhat`, `yhat_lower` and
  `yhat_upper` (the band the recent window expects; see detection.scheduler.expected)
- from the notifier's outbox: `aiops_notification_messages{channel,status}` (pending, sent,
  failed, muted) and `aiops_notification_channel_failing{channel}` (1 when the channel's
  latest finished message failed for good: a revoked token, a deleted webhook)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.domain.errors import StoreUnavailableError
from controlplane.domain.models import IncidentStatus
from controlplane.storage import Database
from controlplane.storage.models import (
    IncidentRow,
    LeaseRow,
    MessageRow,
    SignalOwnerRow,
    SignalStateRow,
    WorkerRow,
)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, db: Database, *, member_ttl_seconds: float = 20.0) -> None:
        self.registry = CollectorRegistry()
        self.received = Counter(
            "aiops_notifications_received",
            "Notifications accepted and stored.",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "aiops_notifications_rejected",
            "Notifications refused, by reason.",
            ["source", "reason"],
            registry=self.registry,
        )
        self.spans = Counter(
            "aiops_spans_received", "Spans received on /v1/traces.", registry=self.registry
        )
        self.orphans_dropped = Counter(
            "aiops_spans_orphans_dropped",
            "Spans that waited for a parent span that never came, forgotten to bound memory "
            "(the OTLP receiver keeps at most 200,000 waiting).",
            registry=self.registry,
        )
        self.detection_cycles = Counter(
            "aiops_detection_cycles",
            "Detection cycles run, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "aiops_http_request_duration_seconds",
            "API request latency.",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_IncidentsByStatus(db))
        self.registry.register(_Coordination(db, member_ttl_seconds))
        self.registry.register(_Notifications(db))
        self.registry.register(_SignalSeries(db))


class _IncidentsByStatus(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("aiops_incidents", "Incidents by status.", labels=["status"])
        try:
            with self.db.read() as session:
                counts = dict(
                    session.execute(
                        select(IncidentRow.status, func.count()).group_by(IncidentRow.status)
                    ).all()
                )
        except StoreUnavailableError:
            return  # the scrape still succeeds; aiops_up-style health lives in /readyz
        for status in IncidentStatus:
            gauge.add_metric([status.value], counts.get(status.value, 0))
        yield gauge


class _Coordination(Collector):
    def __init__(self, db: Database, ttl_seconds: float) -> None:
        self.db, self.ttl = db, timedelta(seconds=ttl_seconds)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = datetime.now(UTC)
        try:
            with self.db.read() as session:
                live = set(
                    session.scalars(
                        select(WorkerRow.worker_id).where(WorkerRow.heartbeat_at >= now - self.ttl)
                    )
                )
                owners = list(session.scalars(select(SignalOwnerRow.owner)))
                oldest = session.scalar(select(func.min(SignalStateRow.updated_at)))
                leases = list(session.scalars(select(LeaseRow)))
        except StoreUnavailableError:
            return
        yield GaugeMetricFamily(
            "aiops_workers_live", "Processes running loops with a fresh heartbeat.", len(live)
        )
        unowned = sum(1 for owner in owners if owner not in live)
        yield GaugeMetricFamily(
            "aiops_signals_unowned", "Detection signals no live worker scores.", unowned
        )
        lag = (now - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "aiops_detection_lag_seconds", "Since the least recently scored signal.", lag
        )
        expires = GaugeMetricFamily(
            "aiops_lease_expires_in_seconds",
            "Until a lease expires (< 0: lapsed).",
            labels=["lease"],
        )
        tokens = GaugeMetricFamily(
            "aiops_lease_token",
            "A lease's token: grows by one at every takeover.",
            labels=["lease"],
        )
        for lease in leases:
            expires.add_metric([lease.name], (lease.expires_at - now).total_seconds())
            tokens.add_metric([lease.name], lease.token)
        yield expires
        yield tokens


class _SignalSeries(Collector):
    """vmanomaly's output series, read from each signal's last state."""

    NAMES = (
        ("anomaly_score", "last_score", "Anomaly score of the signal's last point."),
        ("y", "last_value", "The signal's last value."),
        ("yhat", "yhat", "What the recent window expects (its median)."),
        ("yhat_lower", "yhat_lower", "Lower edge of the expected band."),
        ("yhat_upper", "yhat_upper", "Upper edge of the expected band."),
    )

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        columns = [getattr(SignalStateRow, column) for _, column, _ in self.NAMES]
        try:
            with self.db.read() as session:
                rows = session.execute(
                    select(SignalStateRow.signal, SignalStateRow.service, *columns).where(
                        SignalStateRow.last_score.is_not(None)
                    )
                ).all()
        except StoreUnavailableError:
            return
        for index, (name, _, help_text) in enumerate(self.NAMES):
            family = GaugeMetricFamily(name, help_text, labels=["for", "signal", "service"])
            for row in rows:
                value = row[2 + index]
                if value is not None:
                    family.add_metric([row.signal, row.signal, row.service], value)
            yield family


class _Notifications(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self.db.read() as session:
                counts = session.execute(
                    select(MessageRow.channel, MessageRow.status, func.count()).group_by(
                        MessageRow.channel, MessageRow.status
                    )
                ).all()
                latest = (
                    select(func.max(MessageRow.message_id))
                    .where(MessageRow.status.in_(["sent", "failed"]))
                    .group_by(MessageRow.channel)
                )
                last = session.execute(
                    select(MessageRow.channel, MessageRow.status).where(
                        MessageRow.message_id.in_(latest)
                    )
                ).all()
        except StoreUnavailableError:
            return
        messages = GaugeMetricFamily(
            "aiops_notification_messages",
            "Messages in the notification outbox, by channel and status.",
            labels=["channel", "status"],
        )
        for channel, status, count in counts:
            messages.add_metric([channel, status], count)
        yield messages
        failing = GaugeMetricFamily(
            "aiops_notification_channel_failing",
            "1 when the channel's latest finished message failed for good (see its last_error).",
            labels=["channel"],
        )
        for channel, status in last:
            failing.add_metric([channel], 1.0 if status == "failed" else 0.0)
        yield failing


class LatencyMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the webhook hot path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.latency.labels(scope["method"], path, str(status)).observe(
                time.perf_counter() - start
            )
