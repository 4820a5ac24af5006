"""Silences from the API against a real Alertmanager (API v2): made from an incident with
its id and author in the comment, seen silencing a matching alert in Alertmanager itself,
listed as covering the incident, expired, audited and on the timeline."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import select

from controlplane.api.app import create_app
from controlplane.config import load_settings
from controlplane.storage.models import AuditEventRow, IncidentRow, TimelineEntryRow
from controlplane.testing.servers import Alertmanager, free_port
from tests.factories import WEBHOOK_TOKEN, WEBHOOK_URL, alert, bearer, notification

pytestmark = pytest.mark.integration


@pytest.fixture
def alertmanager(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}/hook"  # its notifications are not this test's
    with Alertmanager(tmp_path / "am", webhook_url=closed, token="unused") as running:
        yield running


@pytest.fixture
def am_client(settings, db, alertmanager):
    from fastapi.testclient import TestClient

    configured = load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        auth={"webhook_token": WEBHOOK_TOKEN},
        alertmanager={"url": alertmanager.url},
    )
    with TestClient(create_app(configured, db)) as client:
        yield client


def open_incident(client, db) -> int:
    body = notification([alert("f1", service="checkout", severity="critical")], "g-silence")
    assert client.post(WEBHOOK_URL, json=body, headers=bearer(WEBHOOK_TOKEN)).status_code == 200
    with db.read() as session:
        return session.scalars(select(IncidentRow.incident_id)).one()


def test_silence_an_incident_in_alertmanager_and_expire_it(am_client, db, tokens, alertmanager):
    incident_id = open_incident(am_client, db)
    operator, viewer = bearer(tokens["operator"]), bearer(tokens["viewer"])
    request = {"minutes": 30, "comment": "deploying the fix"}
    refused = am_client.post(
        f"/api/v1/incidents/{incident_id}/silences", json=request, headers=viewer
    )
    assert refused.status_code == 403

    made = am_client.post(
        f"/api/v1/incidents/{incident_id}/silences", json=request, headers=operator
    )
    assert made.status_code == 201, made.text
    silence = made.json()
    assert silence["state"] == "active"
    assert silence["incident_id"] == incident_id
    assert {(m["name"], m["value"]) for m in silence["matchers"]} == {
        ("alertname", "Alertf1"),
        ("service", "checkout"),
        ("severity", "critical"),
    }

    # Alertmanager itself has it, with the incident and the author in its comment ...
    own = httpx.get(f"{alertmanager.url}/api/v2/silence/{silence['silence_id']}").json()
    assert own["createdBy"] == "test-operator"
    assert (
        own["comment"]
        == f"deploying the fix [aiops incident #{incident_id}, silenced by test-operator]"
    )
    # ... and it silences a matching alert.
    alertmanager.post_alerts(
        [{"labels": {"alertname": "Alertf1", "service": "checkout", "severity": "critical"}}]
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alerts = httpx.get(f"{alertmanager.url}/api/v2/alerts").json()
        if alerts and alerts[0]["status"]["silencedBy"]:
            break
        time.sleep(0.2)
    assert alerts[0]["status"]["silencedBy"] == [silence["silence_id"]]

    covering = am_client.get(f"/api/v1/incidents/{incident_id}/silences", headers=viewer).json()
    assert [s["silence_id"] for s in covering] == [silence["silence_id"]]
    listed = am_client.get(f"/api/v1/silences?incident_id={incident_id}", headers=viewer).json()
    assert [s["silence_id"] for s in listed] == [silence["silence_id"]]

    expired = am_client.delete(f"/api/v1/silences/{silence['silence_id']}", headers=operator)
    assert expired.status_code == 200, expired.text
    assert expired.json()["state"] == "expired"
    assert am_client.get(f"/api/v1/incidents/{incident_id}/silences", headers=viewer).json() == []
    with db.read() as session:
        actions = session.scalars(
            select(AuditEventRow.action).where(AuditEventRow.action.startswith("silence."))
        ).all()
        entries = session.scalars(
            select(TimelineEntryRow.message).where(TimelineEntryRow.kind == "silenced")
        ).all()
    assert actions == ["silence.created", "silence.expired"]
    assert len(entries) == 2
    assert "deploying the fix" in entries[0]


def test_bad_silences_are_refused_naming_the_field(am_client, db, tokens):
    incident_id = open_incident(am_client, db)
    operator = bearer(tokens["operator"])
    url = f"/api/v1/incidents/{incident_id}/silences"
    bad_name = {"comment": "x", "matchers": [{"name": "bad-name", "value": "v"}]}
    answer = am_client.post(url, json=bad_name, headers=operator)
    assert answer.status_code == 422
    assert "name" in answer.text
    forever = am_client.post(url, json={"comment": "x", "minutes": 10**7}, headers=operator)
    assert forever.status_code == 422
    missing = am_client.delete("/api/v1/silences/not-a-uuid", headers=operator)
    assert missing.status_code == 404


def test_alertmanager_down_is_retryable(settings, db, tokens):
    from fastapi.testclient import TestClient

    down = load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        alertmanager={"url": f"http://127.0.0.1:{free_port()}"},
    )
    with TestClient(create_app(down, db)) as client:
        answer = client.get("/api/v1/silences", headers=bearer(tokens["viewer"]))
    assert answer.status_code == 503
    assert "Retry-After" in answer.headers
