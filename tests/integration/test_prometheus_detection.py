"""A real Prometheus (Debian package) with three days of backfilled history feeds the
detection scheduler; an injected fault becomes an incident with evidence and root-cause hints,
visible through the API. Also: chunked range queries, a bad query and a dead server are
"no data", never an anomaly, and the other signals carry on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from controlplane.collectors.prometheus import PrometheusCollector, plan_chunks
from controlplane.config import PrometheusSettings, load_settings
from controlplane.detection.scheduler import DetectionScheduler
from controlplane.domain.errors import QueryError, SourceUnavailableError
from controlplane.storage import Database
from controlplane.storage.models import IncidentRow
from controlplane.testing.servers import Prometheus, free_port, openmetrics
from tests.factories import bearer

pytestmark = pytest.mark.integration

STEP = 60
DAYS = 3
# Data ends a minute ago; the fault is injected into the last 20 minutes of checkout latency.
END = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
FAULT_MINUTES = 20


def _history() -> str:
    rng = np.random.default_rng(7)
    n = DAYS * 24 * 60
    t = np.arange(n)
    start = END - timedelta(minutes=n - 1)
    stamps = [(start + timedelta(minutes=int(i))).timestamp() for i in t]
    daily = np.sin(2 * np.pi * t / 1440)
    checkout = 0.20 + 0.05 * daily + rng.normal(0, 0.004, n)
    checkout[-FAULT_MINUTES:] += 0.25  # the fault: latency jumps
    payments = 0.10 + 0.02 * daily + rng.normal(0, 0.002, n)
    return openmetrics(
        {
            ("demo_latency_seconds", "checkout"): checkout,
            ("demo_latency_seconds", "payments"): payments,
        },
        stamps,
    )


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with Prometheus(tmp_path_factory.mktemp("prometheus"), history=_history()) as server:
        yield server


def _signals():
    return [
        {
            "name": f"{service}-latency",
            "service": service,
            "query": f'demo_latency_seconds{{service="{service}"}}',
        }
        for service in ("checkout", "payments")
    ] + [{"name": "broken-query", "service": "checkout", "query": "sum(("}]


def test_range_queries_are_chunked_under_the_point_limit(prometheus):
    collector = PrometheusCollector(PrometheusSettings(url=prometheus.url, max_points=1000))
    start = END - timedelta(days=DAYS) + timedelta(minutes=1)
    assert len(plan_chunks(start, END, STEP, 1000)) == 5  # 4320 points
    (series,) = collector.query_range('demo_latency_seconds{service="payments"}', start, END, STEP)
    assert len(series) == DAYS * 24 * 60
    assert (np.diff(series.timestamps).astype("timedelta64[s]").astype(int) == STEP).all()
    assert series.labels["service"] == "payments"


def test_bad_query_and_dead_server_are_named_errors(prometheus):
    collector = PrometheusCollector(PrometheusSettings(url=prometheus.url))
    with pytest.raises(QueryError, match="refused query 'sum\\(\\('"):
        collector.query_range("sum((", END - timedelta(hours=1), END, STEP)
    dead = PrometheusCollector(
        PrometheusSettings(url=f"http://127.0.0.1:{free_port()}", timeout_seconds=2)
    )
    with pytest.raises(SourceUnavailableError, match="unreachable"):
        dead.query_range("up", END - timedelta(hours=1), END, STEP)


def test_injected_fault_becomes_an_incident_with_evidence(prometheus, settings, client, tokens):
    config = load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        prometheus={"url": prometheus.url},
        detection={"signals": _signals(), "sustain_points": 2},
    )
    db = Database(config.database.url)
    try:
        report = asyncio.run(DetectionScheduler(config, db, clock=lambda: END).run_cycle())
    finally:
        db.dispose()
    assert report.fetched == 2
    assert report.no_data == 1
    assert len(report.opened) == 1

    headers = bearer(tokens["viewer"])
    incidents = client.get("/api/v1/incidents", params={"service": "checkout"}, headers=headers)
    (incident,) = incidents.json()["data"]
    assert incident["source"] == "detector"
    assert incident["title"].startswith("AnomalyDetected: checkout-latency anomalous since")
    detail = client.get(f"/api/v1/incidents/{incident['incident_id']}", headers=headers).json()
    (evidence,) = detail["evidence"]
    onset = datetime.fromisoformat(evidence["onset_at"])
    assert END - timedelta(minutes=FAULT_MINUTES) <= onset <= END
    assert evidence["data"]["query"] == 'demo_latency_seconds{service="checkout"}'
    assert evidence["data"]["detector"] == "ensemble"
    why = evidence["data"]["why"]  # in words: the range rule, or the member that found it
    assert why.startswith(("the value left the range", "far from", "unlike", "a sustained")), why
    assert max(p["score"] for p in evidence["data"]["points"]) >= 0.5
    assert detail["root_cause_hints"][0]["service"] == "checkout"
    assert detail["root_cause_hints"][0]["signal"] == "checkout-latency"

    states = {s["signal"]: s for s in client.get("/api/v1/signals", headers=headers).json()}
    assert states["checkout-latency"]["status"] == "anomalous"
    assert states["payments-latency"]["status"] == "ok"
    assert states["broken-query"]["status"] == "no_data"
    assert "refused query" in states["broken-query"]["last_error"]


@pytest.mark.parametrize("source", ["detector", "security"])
def test_a_signal_family_watches_every_series_of_one_query(
    prometheus, settings, client, tokens, source
):
    """One query, every series a signal: the same fault is found as with one signal per
    series, in one range query a cycle. A family configured as security (in a real set-up,
    401s per route or requests per client) opens incidents of source security, which
    policies leave alone unless they name it."""
    family = {"name": "{service}-latency", "query": "demo_latency_seconds", "source": source}
    config = load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        prometheus={"url": prometheus.url},
        detection={"families": [family], "sustain_points": 2},
    )
    db = Database(config.database.url)
    try:
        scheduler = DetectionScheduler(config, db, clock=lambda: END)
        report = asyncio.run(scheduler.run_cycle())
        with db.read() as session:
            (incident,) = session.scalars(select(IncidentRow)).all()
    finally:
        db.dispose()
    assert sorted(scheduler.runs) == ["checkout-latency", "payments-latency"]
    assert report.fetched == 2
    assert report.opened == [incident.incident_id]
    assert (incident.source, incident.service) == (source, "checkout")
    headers = bearer(tokens["viewer"])
    states = {s["signal"]: s for s in client.get("/api/v1/signals", headers=headers).json()}
    assert states["checkout-latency"]["status"] == "anomalous"
    assert states["payments-latency"]["status"] == "ok"
    assert states["checkout-latency"]["query"] == 'demo_latency_seconds # {service="checkout"}'


def test_a_family_member_without_its_templated_label_is_skipped(prometheus, settings):
    family = {"name": "{team}-latency", "query": "demo_latency_seconds"}
    config = load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        prometheus={"url": prometheus.url},
        detection={"families": [family]},
    )
    db = Database(config.database.url)
    try:
        scheduler = DetectionScheduler(config, db, clock=lambda: END)
        report = asyncio.run(scheduler.run_cycle())
    finally:
        db.dispose()
    assert scheduler.runs == {}
    assert report.fetched == 0
