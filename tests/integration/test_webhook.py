"""The Alertmanager webhook over HTTP: auth, validation, durability, idempotence, grouping."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sqlalchemy import select

from controlplane.domain.alertmanager import Notification
from controlplane.incidents.intake import Delivery, ingest, ingest_alert
from controlplane.storage.models import (
    IncidentRow,
    NotificationRow,
)
from tests.factories import WEBHOOK_URL as URL
from tests.factories import alert, alertmanager_fixture, bearer, counts, notification

pytestmark = pytest.mark.integration


def test_firing_notification_opens_one_incident(client, db, tokens):
    response = client.post(
        URL, json=alertmanager_fixture("sample"), headers=bearer(tokens["webhook"])
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["duplicate"] is False
    assert len(body["opened"]) == 1
    incident = client.get(
        f"/api/v1/incidents/{body['opened'][0]}", headers=bearer(tokens["viewer"])
    ).json()
    assert incident["status"] == "open"
    assert incident["severity"] == "critical"
    assert incident["service"] == "checkout"
    assert incident["title"] == "HighLatency: p95 latency above SLO"
    assert [a["fingerprint"] for a in incident["alerts"]] == ["a2b1f43a0a1afce1"]
    assert [t["kind"] for t in incident["timeline"]] == ["opened"]


def test_duplicate_delivery_gives_one_incident_and_one_timeline_entry(client, db, tokens):
    payload = alertmanager_fixture("sample")
    first = client.post(URL, json=payload, headers=bearer(tokens["webhook"]))
    second = client.post(URL, json=payload, headers=bearer(tokens["webhook"]))
    assert first.status_code == second.status_code == 200
    assert second.json()["duplicate"] is True
    # An HA peer sends the same alerts with another externalURL: a different body, same episode.
    peer = {**payload, "externalURL": "http://127.0.0.1:9094"}
    third = client.post(URL, json=peer, headers=bearer(tokens["webhook"]))
    assert third.json()["duplicate"] is False
    assert third.json()["opened"] == []
    after = counts(db)
    assert after["incident"] == 1
    assert after["alert"] == 1
    assert after["timeline_entry"] == 1
    assert after["notification"] == 2
    with db.read() as session:
        assert (
            session.scalar(
                select(NotificationRow.delivery_count).where(
                    NotificationRow.notification_id == first.json()["notification_id"]
                )
            )
            == 2
        )


def test_resolved_notification_resolves_alert_and_incident(client, db, tokens):
    firing = alertmanager_fixture("sample")
    resolved = copy.deepcopy(firing)
    resolved["status"] = resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2026-11-21T01:09:00Z"
    opened = client.post(URL, json=firing, headers=bearer(tokens["webhook"])).json()["opened"][0]
    result = client.post(URL, json=resolved, headers=bearer(tokens["webhook"])).json()
    assert result["resolved"] == [opened]
    incident = client.get(f"/api/v1/incidents/{opened}", headers=bearer(tokens["viewer"])).json()
    assert incident["status"] == "resolved"
    assert incident["resolved_by"] == "alertmanager"
    assert incident["alerts"][0]["status"] == "resolved"
    assert incident["alerts"][0]["ends_at"].startswith("2026-11-21T01:09:00")
    assert [t["kind"] for t in incident["timeline"]] == ["opened", "alert_resolved", "resolved"]
    # The resolution again, from an HA peer (another body, the same episode): nothing more.
    peer = client.post(
        URL,
        json={**resolved, "externalURL": "http://127.0.0.1:9094"},
        headers=bearer(tokens["webhook"]),
    )
    assert peer.json()["duplicate"] is False
    assert peer.json()["resolved"] == []
    assert counts(db)["timeline_entry"] == 3


def test_alerts_of_one_group_share_an_open_incident_and_raise_its_severity(client, db, tokens):
    hdr = bearer(tokens["webhook"])
    first = client.post(URL, json=notification([alert("f1", service="api")], "g1"), headers=hdr)
    second = client.post(
        URL,
        json=notification(
            [alert("f1", service="api"), alert("f2", service="api", severity="critical")], "g1"
        ),
        headers=hdr,
    )
    incident_id = first.json()["opened"][0]
    assert second.json()["opened"] == []
    assert second.json()["updated"] == [incident_id]
    detail = client.get(f"/api/v1/incidents/{incident_id}", headers=bearer(tokens["viewer"])).json()
    assert detail["severity"] == "critical"
    assert [t["kind"] for t in detail["timeline"]] == ["opened", "alert_added", "severity_raised"]
    # Another group opens another incident.
    third = client.post(URL, json=notification([alert("f3", service="db")], "g2"), headers=hdr)
    assert third.json()["opened"]
    assert third.json()["opened"] != [incident_id]
    # Resolving only one of two alerts keeps the incident open.
    partial = client.post(
        URL, json=notification([alert("f1", service="api", status="resolved")], "g1"), headers=hdr
    )
    assert partial.json()["resolved"] == []
    assert (
        client.get(f"/api/v1/incidents/{incident_id}", headers=bearer(tokens["viewer"])).json()[
            "status"
        ]
        == "open"
    )


def _fire_resolve_fire(client, hdr):
    first = client.post(URL, json=notification([alert("f1", service="api")], "g"), headers=hdr)
    client.post(
        URL, json=notification([alert("f1", service="api", status="resolved")], "g"), headers=hdr
    )
    again = client.post(
        URL,
        json=notification([alert("f1", service="api", starts="2026-11-21T03:00:00Z")], "g"),
        headers=hdr,
    )
    return first.json(), again.json()


def test_a_new_episode_after_the_flap_window_opens_a_new_incident(settings, db, tokens):
    from fastapi.testclient import TestClient

    from controlplane.api import create_app

    no_damping = settings.model_copy(
        update={"incidents": settings.incidents.model_copy(update={"flap_seconds": 0})}
    )
    with TestClient(create_app(no_damping, db)) as client:
        first, again = _fire_resolve_fire(client, bearer(tokens["webhook"]))
    assert again["opened"]
    assert again["opened"] != first["opened"]


def test_a_new_episode_within_the_flap_window_reopens_its_incident(client, tokens, db):
    first, again = _fire_resolve_fire(client, bearer(tokens["webhook"]))
    assert again["opened"] == []
    assert again["updated"] == first["opened"]
    with db.read() as session:
        incident = session.get(IncidentRow, first["opened"][0])
        kinds = [e.kind for e in incident.timeline]
    assert incident.status == "open"
    assert incident.resolved_at is None
    assert kinds[-1] == "reopened"


def test_grouping_by_a_label_merges_alertmanager_groups(settings, db, tokens):
    from fastapi.testclient import TestClient

    from controlplane.api import create_app

    by_service = settings.model_copy(
        update={"incidents": settings.incidents.model_copy(update={"group_by": "service"})}
    )
    with TestClient(create_app(by_service, db)) as client:
        hdr = bearer(tokens["webhook"])
        a = client.post(URL, json=notification([alert("f1", service="api")], "g1"), headers=hdr)
        b = client.post(URL, json=notification([alert("f2", service="api")], "g2"), headers=hdr)
        c = client.post(URL, json=notification([alert("f3", service="db")], "g1"), headers=hdr)
    assert b.json()["opened"] == []
    assert b.json()["updated"] == a.json()["opened"]
    assert c.json()["opened"]
    assert c.json()["opened"] != a.json()["opened"]


def _parent(payload: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    node: Any = payload
    for key in path[:-1]:
        node = node[key]
    return node


def _without(payload: dict[str, Any], *path: str | int) -> dict[str, Any]:
    broken = copy.deepcopy(payload)
    del _parent(broken, path)[path[-1]]
    return broken


def _with(payload: dict[str, Any], value: Any, *path: str | int) -> dict[str, Any]:
    broken = copy.deepcopy(payload)
    _parent(broken, path)[path[-1]] = value
    return broken


def _invalid_cases() -> list[tuple[str, Any, int, str]]:
    base = notification([alert("f1", service="api")], "g")
    return [
        ("malformed json", b'{"version": "4", ', 400, "body"),
        ("not an object", b"[1, 2]", 422, "body"),
        ("wrong version", _with(base, "3", "version"), 422, "version"),
        ("version as number", _with(base, 4, "version"), 422, "version"),
        ("missing alerts", _without(base, "alerts"), 422, "alerts"),
        ("empty alerts", _with(base, [], "alerts"), 422, "alerts"),
        ("missing groupKey", _without(base, "groupKey"), 422, "groupKey"),
        (
            "missing fingerprint",
            _without(base, "alerts", 0, "fingerprint"),
            422,
            "alerts.0.fingerprint",
        ),
        (
            "bad startsAt",
            _with(base, "yesterday", "alerts", 0, "startsAt"),
            422,
            "alerts.0.startsAt",
        ),
        (
            "naive startsAt",
            _with(base, "2026-11-21T01:00:00", "alerts", 0, "startsAt"),
            422,
            "alerts.0.startsAt",
        ),
        (
            "labels not strings",
            _with(base, {"severity": 3}, "alerts", 0, "labels"),
            422,
            "alerts.0.labels.severity",
        ),
        ("unknown status", _with(base, "pending", "alerts", 0, "status"), 422, "alerts.0.status"),
        ("alerts not a list", _with(base, {"a": 1}, "alerts"), 422, "alerts"),
        ("oversized", _with(base, "x" * 2_000_000, "commonAnnotations"), 413, "body"),
    ]


@pytest.mark.parametrize(
    ("case", "payload", "status", "field"), _invalid_cases(), ids=[c[0] for c in _invalid_cases()]
)
def test_invalid_payloads_are_refused_and_nothing_is_stored(
    client, db, tokens, case, payload, status, field
):
    before = counts(db)
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = client.post(
        URL, content=body, headers={**bearer(tokens["webhook"]), "Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    error = response.json()
    assert error["errors"][0]["field"] == field
    assert field in error["detail"]
    assert counts(db) == before


@pytest.mark.parametrize(
    ("token", "status"), [(None, 401), ("nope", 401), ("viewer", 403), ("operator", 403)]
)
def test_webhook_requires_the_webhook_token(client, db, tokens, token, status):
    headers = {} if token is None else bearer(tokens.get(token, token))
    response = client.post(URL, json=alertmanager_fixture("sample"), headers=headers)
    assert response.status_code == status
    assert counts(db)["notification"] == 0


def test_settings_token_and_admin_may_deliver(client, tokens):
    for who in ("settings-webhook", "admin"):
        response = client.post(
            URL, json=alertmanager_fixture("from_prometheus_sample"), headers=bearer(tokens[who])
        )
        assert response.status_code == 200, (who, response.text)


def test_webhook_token_cannot_read_incidents(client, tokens):
    for secret in (tokens["webhook"], tokens["settings-webhook"]):
        assert client.get("/api/v1/incidents", headers=bearer(secret)).status_code == 403


def test_a_forecast_risk_never_joins_the_paging_incident_of_its_service(db):
    """Grouped by service (the demo's setting), a CapacityRisk forecast joined checkout's
    paging latency incident, which then could never resolve. A risk gets an incident of its
    own; an anomaly on the same service still joins the outage it belongs to."""
    paging = notification([alert("lat1", service="checkout", severity="critical")], "g1")
    body = json.dumps(paging).encode()
    with db.write() as session:
        (opened,) = ingest(
            session,
            [Delivery.of(body, paging, Notification.model_validate(paging))],
            group_by="service",
        )
        risk = ingest_alert(
            session,
            alert("cap1", service="checkout"),
            source="forecast",
            group_key="checkout-cpu",
            joins_others=False,
        )
        anomaly = ingest_alert(
            session, alert("det1", service="checkout"), source="detector", group_key="lat"
        )
    assert risk.opened
    assert risk.opened != opened.opened
    assert anomaly.updated == opened.opened
    assert counts(db)["incident"] == 2
