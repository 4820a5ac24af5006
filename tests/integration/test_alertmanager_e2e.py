"""A real Alertmanager (Debian package) delivers to the API served by uvicorn on loopback:
alerts pushed to Alertmanager become one incident; resolving them resolves it. Runs on SQLite
and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from controlplane.api import create_app
from controlplane.config import Settings
from controlplane.domain.errors import ConfigError
from controlplane.storage import Database
from controlplane.testing.servers import Alertmanager, ApiServer, find_alertmanager
from tests.factories import bearer, posted_alert, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def alertmanager_binary() -> str:
    try:
        return find_alertmanager()
    except ConfigError as exc:
        pytest.skip(str(exc))


def test_alerts_through_real_alertmanager_open_and_resolve_one_incident(
    alertmanager_binary, settings: Settings, db: Database, tokens, tmp_path: Path
):
    viewer = bearer(tokens["viewer"])
    with (
        ApiServer(create_app(settings, db)) as api,
        Alertmanager(
            tmp_path / "alertmanager",
            webhook_url=f"{api.url}/api/v1/webhooks/alertmanager",
            token=tokens["webhook"],
        ) as am,
    ):
        firing = [
            posted_alert("HighLatency", "checkout", "checkout-1"),
            posted_alert("HighLatency", "checkout", "checkout-2"),
        ]
        am.post_alerts(firing)

        def open_incidents():
            page = httpx.get(f"{api.url}/api/v1/incidents?status=open", headers=viewer).json()
            incidents = page["data"]
            if incidents and len(_detail(api.url, incidents[0], viewer)["alerts"]) == 2:
                return incidents
            return None

        incidents = wait_for(open_incidents, what="an incident with both alerts")
        assert len(incidents) == 1
        incident = _detail(api.url, incidents[0], viewer)
        assert incident["service"] == "checkout"
        assert incident["severity"] == "critical"
        assert {a["labels"]["pod"] for a in incident["alerts"]} == {"checkout-1", "checkout-2"}

        ended = datetime.now(UTC) - timedelta(seconds=1)
        am.post_alerts([{**a, "endsAt": ended.isoformat()} for a in firing])

        def resolved():
            detail = _detail(api.url, incidents[0], viewer)
            return detail if detail["status"] == "resolved" else None

        detail = wait_for(resolved, what="the incident to resolve")
        assert detail["resolved_by"] == "alertmanager"
        assert all(a["status"] == "resolved" for a in detail["alerts"])
        kinds = [t["kind"] for t in detail["timeline"]]
        assert kinds.count("opened") == 1
        assert kinds.count("resolved") == 1
        assert httpx.get(f"{api.url}/api/v1/incidents", headers=viewer).json()["count"] == 1


def _detail(url: str, incident: dict, headers: dict) -> dict:
    return httpx.get(f"{url}/api/v1/incidents/{incident['incident_id']}", headers=headers).json()
