"""Maintenance windows through the API on the real store: opened by people and by a CI deploy
event, validated, cancelled, audited; inside one, incidents page nobody and the policy loop
plans at most what the window allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sqlalchemy import select

from controlplane.config import load_settings
from controlplane.notifications.notifier import Notifier
from controlplane.policy.decider import Decider
from controlplane.policy.schema import Policy
from controlplane.storage.models import AuditEventRow, DecisionRow, MessageRow
from controlplane.testing.oncall import OnCallServices
from remediations import Plan
from tests.factories import WEBHOOK_TOKEN, WEBHOOK_URL, alert, bearer, notification

pytestmark = pytest.mark.integration
WINDOWS = "/api/v1/maintenance-windows"


def open_window(client, tokens, **fields):
    body = {"name": "db migration", "reason": "schema change", "duration_minutes": 60, **fields}
    return client.post(WINDOWS, json=body, headers=bearer(tokens["operator"]))


def test_windows_are_opened_listed_cancelled_and_audited(client, tokens, db):
    assert open_window(client, tokens, service="checkout").status_code == 201
    viewer = client.post(
        WINDOWS,
        json={"name": "x", "reason": "y", "duration_minutes": 5},
        headers=bearer(tokens["viewer"]),
    )
    assert viewer.status_code == 403
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert open_window(client, tokens, starts_at=later).status_code == 201
    active = client.get(f"{WINDOWS}?active=true", headers=bearer(tokens["viewer"])).json()
    assert [w["service"] for w in active] == ["checkout"]  # the one of tomorrow is not open
    assert active[0]["open_now"] is True
    assert active[0]["created_by"] == "test-operator"
    cancel = f"{WINDOWS}/{active[0]['window_id']}/cancel"
    done = client.post(cancel, json={"reason": "done early"}, headers=bearer(tokens["operator"]))
    assert done.status_code == 200
    assert done.json()["open_now"] is False
    again = client.post(cancel, json={"reason": "again"}, headers=bearer(tokens["operator"]))
    assert again.status_code == 409
    assert client.get(f"{WINDOWS}?active=true", headers=bearer(tokens["viewer"])).json() == []
    with db.read() as session:
        actions = session.scalars(
            select(AuditEventRow.action).where(AuditEventRow.action.startswith("maintenance."))
        ).all()
    assert actions == ["maintenance.opened", "maintenance.opened", "maintenance.cancelled"]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"recurrence": "every sunday", "duration_minutes": 60}, "recurrence"),
        ({"recurrence": "0 2 * * sun", "duration_minutes": None}, "duration_minutes"),
        ({"duration_minutes": None}, "ends_at"),
        ({"automation": "auto"}, "automation"),
        ({"starts_at": "2026-12-01T10:00:00"}, "starts_at"),
    ],
)
def test_bad_windows_are_refused_naming_the_field(client, tokens, fields, named):
    answer = open_window(client, tokens, **fields)
    assert answer.status_code == 422
    assert named in answer.text


def test_a_deploy_event_from_ci_opens_a_window(client, tokens):
    event = {"service": "checkout", "version": "v2.4.1", "url": "https://ci.example/run/42"}
    made = client.post("/api/v1/webhooks/deploy", json=event, headers=bearer(tokens["webhook"]))
    assert made.status_code == 201, made.text
    window = made.json()
    assert (window["name"], window["source"], window["automation"]) == (
        "deploy checkout v2.4.1",
        "deploy",
        "approval",
    )
    assert window["created_by"] == "test-webhook"
    assert "https://ci.example/run/42" in window["reason"]
    viewer = client.post("/api/v1/webhooks/deploy", json=event, headers=bearer(tokens["viewer"]))
    assert viewer.status_code == 403


def test_inside_a_window_incidents_page_nobody_and_automation_is_capped(
    client, tokens, db, settings, tmp_path
):
    open_window(client, tokens, service="checkout", automation="approval")
    with OnCallServices() as oncall:
        path = tmp_path / "notifications.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "channels": {"hook": {"type": "webhook", "url": f"{oncall.url}/hook/x"}},
                    "routes": [
                        {"name": "all", "events": ["incident.opened"], "channels": ["hook"]}
                    ],
                }
            )
        )
        configured = load_settings(
            database={"url": settings.database.url}, notifications={"file": str(path)}
        )
        notifier = Notifier(configured, db)
        for fingerprint, service in (("m1", "checkout"), ("m2", "payments")):
            body = notification([alert(fingerprint, service=service)], f"g-{fingerprint}")
            client.post(WEBHOOK_URL, json=body, headers=bearer(WEBHOOK_TOKEN))
        notifier.cycle()
        (sent,) = oncall.under("/hook")
    assert "payments" in sent.body.decode()
    with db.read() as session:
        muted = session.scalars(select(MessageRow).where(MessageRow.status == "muted")).one()
    assert muted.last_error == "maintenance window #1 'db migration' mutes paging"

    auto = Policy.model_validate(
        {"name": "scale-any", "action": {"type": "scale_deployment", "by": 1}, "mode": "auto"}
    )

    def plan(params):
        return Plan(params.type, {}, {"replicas": 2}, {"replicas": 3}, "scale")

    decider = Decider(
        db,
        [auto],
        lambda params: type("Built", (), {"plan": lambda self: plan(params)})(),
        global_max_per_hour=10,
        clock=lambda: datetime.now(UTC),
        lease_seconds=30,
    )
    decider.run()
    with db.read() as session:
        decided = {d.target: d for d in session.scalars(select(DecisionRow))}
    checkout = next(d for t, d in decided.items() if "checkout" in t)
    payments = next(d for t, d in decided.items() if "payments" in t)
    assert (checkout.status, checkout.mode) == ("pending_approval", "approval")
    assert "maintenance window #1 'db migration' runs auto policies as approval" in checkout.reason
    assert (payments.status, payments.mode) == ("approved", "auto")
