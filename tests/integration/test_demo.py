"""The demo's pieces: the bundled scenario validates, and without an Alertmanager binary its
alerts still reach the real API as version-4 notifications that open and resolve incidents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from controlplane.api import create_app
from controlplane.demo import Scenario, _am_alert, _DirectSink
from controlplane.servers import ApiServer
from tests.conftest import bearer

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
