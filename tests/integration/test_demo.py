"""The demo's pieces: the bundled scenario validates, without an Alertmanager binary its
alerts still reach the real API as version-4 notifications that open and resolve incidents,
and its capacity workload produces a report with risks."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from controlplane.api import create_app
from controlplane.capacity.job import CapacityJob
from controlplane.config import load_settings
from controlplane.demo import Scenario, _am_alert, _automation, _DirectSink, capacity
from controlplane.detection.scheduler import DetectionScheduler
from controlplane.policy.runner import PolicyRunner
from controlplane.storage.models import DecisionRow, IncidentRow, SignalStateRow
from controlplane.testing.servers import ApiServer, Prometheus
from tests.factories import bearer

pytestmark = pytest.mark.integration


def test_bundled_scenario_is_valid():
    scenario = Scenario.load()
    assert {a.service for a in scenario.alerts} >= {"checkout", "payments"}
    assert all(a.until <= scenario.cycle_seconds for a in scenario.alerts)


def test_direct_delivery_opens_and_resolves_incidents(settings, db, tokens):
    alerts = Scenario.load().alerts[:2]  # the two checkout HighLatency pods
    start = datetime.now(UTC)
    viewer = bearer(tokens["viewer"])
    with ApiServer(create_app(settings, db)) as api:
        sink = _DirectSink(f"{api.url}/api/v1/webhooks/alertmanager", tokens["webhook"])
        sink.post_alerts([_am_alert(a, start, ends=None) for a in alerts])
        opened = httpx.get(f"{api.url}/api/v1/incidents", headers=viewer).json()
        assert opened["count"] == 1
        assert opened["data"][0]["service"] == "checkout"
        sink.post_alerts([_am_alert(a, start, ends=start + timedelta(seconds=5)) for a in alerts])
        incident_id = opened["data"][0]["incident_id"]
        detail = httpx.get(f"{api.url}/api/v1/incidents/{incident_id}", headers=viewer).json()
    assert detail["status"] == "resolved"
    assert len(detail["alerts"]) == 2


def test_demo_capacity_workload_populates_reports_and_incidents(settings, db, tmp_path):
    """What `make demo` shows on the capacity side: the bundled history in a real Prometheus,
    forecast into a report with two signals at risk and their CapacityRisk incidents."""
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    with Prometheus(tmp_path / "prometheus", history=capacity.history(end)) as prometheus:
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            **capacity.settings(prometheus.url),
        )
        report = CapacityJob(config, db, clock=lambda: end, workers=1).produce(
            CapacityJob(config, db).claim("demo", "demo")
        )
    assert report is not None
    assert sorted(o.signal.name for o in report.at_risk) == ["checkout-cpu", "inventory-disk"]
    assert all(o.error is None for o in report.outlooks)
    with db.read() as session:
        services = {i.service for i in session.query(IncidentRow).filter_by(source="forecast")}
    assert services == {"checkout", "inventory"}


def test_demo_detection_scores_its_own_signals_cycle_after_cycle(settings, db, tmp_path):
    """The demo's own detection settings against its own Prometheus: every watched signal is
    scored, and stays scored through cycles that come sooner than its 5-minute step (the
    demo's first impression was every signal `no_data`, Prometheus answering 400 "end
    timestamp must not be before start time" once the first cycle had read up to now)."""
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    with Prometheus(tmp_path / "prometheus", history=capacity.history(end)) as prometheus:
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            **capacity.settings(prometheus.url),
        )
        now = [end]
        scheduler = DetectionScheduler(config, db, clock=lambda: now[0])
        for seconds in (0, 15, 30, 60, 330):  # sooner than the step (300 s), then after it
            now[0] = end + timedelta(seconds=seconds)
            asyncio.run(scheduler.run_cycle())
            with db.read() as session:
                states = session.query(SignalStateRow).all()
            assert sorted(s.signal for s in states) == ["checkout-cpu", "payments-requests"]
            for state in states:
                assert state.status in ("ok", "anomalous"), (seconds, state.last_error)
                assert state.last_error is None
                assert state.last_score is not None


def test_demo_scenario_drives_the_shipped_policies_on_the_stand_in(settings, db, tokens):
    """What `make demo` shows on the self-healing side: scenario alerts, the shipped shop
    policies and the Kubernetes stand-in give a dry-run rollback plan (payments' bad release),
    a scale-out waiting for approval (checkout) and an automatic restart (search)."""
    wanted = {"HighLatency": "checkout", "HighErrorRate": "payments", "PodCrashLooping": "search"}
    alerts = [a for a in Scenario.load().alerts if wanted.get(a.name) == a.service]
    with contextlib.ExitStack() as stack:
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            incidents={"group_by": "service"},
            automation=_automation(stack),
        )
        quiet = config.model_copy(
            update={"automation": config.automation.model_copy(update={"enabled": False})}
        )  # the test runs the policy loop itself
        with ApiServer(create_app(quiet, db)) as api:
            sink = _DirectSink(f"{api.url}/api/v1/webhooks/alertmanager", tokens["webhook"])
            sink.post_alerts([_am_alert(a, datetime.now(UTC), ends=None) for a in alerts])
        report = PolicyRunner(config, db).cycle()
    with db.read() as session:
        decisions = {d.policy: d for d in session.query(DecisionRow)}
    assert decisions["payments-errors-rollback"].status == "dry_run"
    diff = decisions["payments-errors-rollback"].plan["diff"]
    assert "shop/payments:1.1" in diff
    assert "shop/payments:1.0" in diff
    assert decisions["checkout-latency-scale-out"].status == "pending_approval"
    assert decisions["search-crashloop-restart"].status == "succeeded"
    assert report.executed == [decisions["search-crashloop-restart"].decision_id]
