"""The notifier end to end on the real store (SQLite and PostgreSQL): incidents posted to the
API become messages on the routes that match, each sent once; grouping, quiet hours, rate
limits, retries with backoff, permanent failures on /metrics, signed single-use approval
links and escalation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from controlplane.config import Settings, load_settings
from controlplane.domain.models import DecisionStatus
from controlplane.notifications import links
from controlplane.notifications.notifier import Notifier
from controlplane.storage import Database, audit
from controlplane.storage.models import AuditEventRow, DecisionRow, IncidentRow, MessageRow
from controlplane.testing.oncall import OnCallServices
from tests.factories import WEBHOOK_TOKEN, WEBHOOK_URL, alert, bearer, notification

pytestmark = pytest.mark.integration

PD_KEY = "R0UT1NGKEY0123456789ABCDEFGHIJKL"
SECRET = "s" * 40


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def oncall() -> Iterator[OnCallServices]:
    with OnCallServices() as services:
        yield services


def configured(settings: Settings, tmp_path: Path, oncall: OnCallServices, **file: Any) -> Settings:
    channels = {
        "slack": {"type": "slack_webhook", "url": f"{oncall.url}/slack/webhook/T/B/X"},
        "pager": {"type": "pagerduty", "routing_key": PD_KEY, "url": f"{oncall.url}/pagerduty"},
        "teams": {"type": "teams", "url": f"{oncall.url}/teams/flow"},
    }
    for name, extra in file.pop("channel_extra", {}).items():
        channels[name] = {**channels[name], **extra}
    path = tmp_path / "notifications.yaml"
    path.write_text(yaml.safe_dump({"channels": channels, **file}))
    return load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        auth={"webhook_token": WEBHOOK_TOKEN},
        notifications={"file": str(path), "link_secret": SECRET},
        links={"console_url": "http://console.example:8501"},
    )


def post_alert(client, fingerprint: str, *, severity: str = "critical", status: str = "firing"):
    body = notification(
        [alert(fingerprint, service="checkout", severity=severity, status=status)],
        f"group-{fingerprint}",
    )
    response = client.post(WEBHOOK_URL, json=body, headers=bearer(WEBHOOK_TOKEN))
    assert response.status_code == 200, response.text


def messages(db: Database) -> list[MessageRow]:
    with db.read() as session:
        return list(session.scalars(select(MessageRow).order_by(MessageRow.message_id)))


ALL_INCIDENT_EVENTS = ["incident.opened", "incident.acknowledged", "incident.resolved"]
APPROVAL_ROUTES = [
    {
        "name": "approvals",
        "events": ["approval.waiting"],
        "channels": ["slack"],
        "escalate_after_minutes": 15,
        "escalate_to": ["pager"],
    }
]


def test_each_event_goes_once_to_every_route_that_matches(client, db, settings, tmp_path, oncall):
    routes = [
        {"name": "everything", "events": ALL_INCIDENT_EVENTS, "channels": ["slack"]},
        {
            "name": "page",
            "events": ALL_INCIDENT_EVENTS,
            "severities": ["critical"],
            "channels": ["pager"],
        },
    ]
    clock = Clock()
    notifier = Notifier(configured(settings, tmp_path, oncall, routes=routes), db, clock)
    post_alert(client, "a1", severity="critical")
    post_alert(client, "b2", severity="warning")
    first = notifier.cycle()
    assert (first.routed, first.sent, first.failed) == (3, 3, 0)
    assert notifier.cycle().routed == 0  # routed once, sent once
    assert len(oncall.under("/slack")) == 2
    post_alert(client, "a1", severity="critical", status="resolved")
    notifier.cycle()
    assert len(oncall.under("/pagerduty")) == 1  # a resolution is told once it held
    clock.advance(601)
    notifier.cycle()
    pages = [r.json for r in oncall.under("/pagerduty")]
    assert [p["event_action"] for p in pages] == ["trigger", "resolve"]
    assert pages[0]["dedup_key"] == pages[1]["dedup_key"]
    assert oncall.refused == []
    with db.read() as session:
        sent = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "notification.sent")
        ).all()
    assert len(sent) == 5  # opened: slack twice, pager once; resolved: slack and pager
    assert {s.details["channel"] for s in sent} == {"slack", "pager"}


def test_a_storm_is_one_message_per_window(client, db, settings, tmp_path, oncall):
    routes = [
        {
            "name": "storm",
            "events": ["incident.opened"],
            "channels": ["slack"],
            "group_seconds": 60,
        }
    ]
    clock = Clock()
    notifier = Notifier(configured(settings, tmp_path, oncall, routes=routes), db, clock)
    for n in range(20):
        post_alert(client, f"s{n}")
    notifier.cycle()
    assert oncall.under("/slack") == []  # the window is still open
    clock.advance(61)
    notifier.cycle()
    (message,) = oncall.under("/slack")
    assert message.json["text"].startswith("20 events (incident.opened)")
    (row,) = messages(db)
    assert (row.status, len(row.events)) == ("sent", 20)


def test_outages_are_retried_with_backoff_and_refusals_reported(
    client, db, settings, tmp_path, oncall
):
    routes = [{"name": "all", "events": ["incident.opened"], "channels": ["slack", "teams"]}]
    clock = Clock()
    notifier = Notifier(configured(settings, tmp_path, oncall, routes=routes), db, clock)
    oncall.fail("/slack", 503, times=2)
    oncall.fail("/teams", 404, times=99)  # the workflow was deleted
    post_alert(client, "r1")
    result = notifier.cycle()
    assert (result.retrying, result.failed) == (1, 1)
    notifier.cycle()
    assert len(oncall.under("/slack")) == 1  # not before its backoff (5 s)
    clock.advance(6)
    assert notifier.cycle().retrying == 1  # second outage: next wait 10 s
    clock.advance(11)
    assert notifier.cycle().sent == 1
    assert len(oncall.under("/teams")) == 1  # a refusal is not retried
    by_channel = {m.channel: m for m in messages(db)}
    assert (by_channel["slack"].status, by_channel["slack"].attempts) == ("sent", 3)
    assert by_channel["teams"].status == "failed"
    assert "404" in (by_channel["teams"].last_error or "")
    scraped = client.get("/metrics").text
    assert 'aiops_notification_channel_failing{channel="teams"} 1.0' in scraped
    assert 'aiops_notification_channel_failing{channel="slack"} 0.0' in scraped
    assert 'aiops_notification_messages{channel="teams",status="failed"} 1.0' in scraped


def test_quiet_hours_mute_all_but_the_allowed_severities(client, db, settings, tmp_path, oncall):
    always = {"windows": [{"start": "00:00", "end": "23:59:59"}], "allow": ["critical"]}
    routes = [
        {
            "name": "night",
            "events": ["incident.opened"],
            "channels": ["slack"],
            "quiet_hours": {**always, "timezone": "Europe/Berlin"},
        }
    ]
    notifier = Notifier(configured(settings, tmp_path, oncall, routes=routes), db)
    post_alert(client, "q1", severity="warning")
    post_alert(client, "q2", severity="critical")
    notifier.cycle()
    assert len(oncall.under("/slack")) == 1
    assert sorted(m.status for m in messages(db)) == ["muted", "sent"]


def test_a_rate_limit_defers_and_never_drops(client, db, settings, tmp_path, oncall):
    routes = [{"name": "all", "events": ["incident.opened"], "channels": ["slack"]}]
    clock = Clock()
    limit = {"slack": {"rate_limit": {"messages": 2, "per_seconds": 60}}}
    notifier = Notifier(
        configured(settings, tmp_path, oncall, routes=routes, channel_extra=limit), db, clock
    )
    for n in range(5):
        post_alert(client, f"l{n}")
    notifier.cycle()
    assert len(oncall.under("/slack")) == 2
    clock.advance(61)
    notifier.cycle()
    assert len(oncall.under("/slack")) == 4
    clock.advance(61)
    notifier.cycle()
    assert [m.status for m in messages(db)] == ["sent"] * 5


def waiting_decision(db: Database, incident_id: int) -> int:
    """A decision waiting for approval, as the policy loop records it."""
    with db.write() as session:
        row = DecisionRow(
            incident_id=incident_id,
            policy="scale-checkout",
            policy_version="v1",
            mode="approval",
            action="scale",
            target="Deployment/shop/checkout",
            params={"type": "scale", "replicas": 5},
            status=DecisionStatus.PENDING_APPROVAL,
            reason="waiting for approval",
            checks=[],
            plan={"diff": [{"path": "spec.replicas", "before": 3, "after": 5}]},
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor="policy-engine",
            action="policy.decided",
            target_type="decision",
            target_id=row.decision_id,
            details={"status": "pending_approval"},
        )
        return row.decision_id


def test_an_approval_link_opens_the_plan_and_approves_it_once(
    client, db, settings, tmp_path, oncall, tokens
):
    routes = APPROVAL_ROUTES
    clock = Clock()
    settings = configured(settings, tmp_path, oncall, routes=routes)
    client.app.state.settings = settings
    notifier = Notifier(settings, db, clock)
    post_alert(client, "p1")
    with db.read() as session:
        incident_id = session.scalars(select(IncidentRow.incident_id)).one()
    decision_id = waiting_decision(db, incident_id)
    notifier.cycle()
    (message,) = oncall.under("/slack")
    actions = [block for block in message.json["blocks"] if block["type"] == "actions"]
    (approve,) = [b for b in actions[0]["elements"] if b.get("style") == "primary"]
    url = approve["url"]
    assert url.startswith(f"http://console.example:8501/approvals?decision={decision_id}&link=")
    assert "Bearer" not in url
    assert tokens["operator"] not in url
    token = url.split("link=", 1)[1]
    signed = links.verify(SECRET, token, datetime.now(UTC))
    assert signed.decision_id == decision_id

    shown = client.get(f"/api/v1/approval-links/{token}")  # no sign-in needed to read it
    assert shown.status_code == 200, shown.text
    assert shown.json()["decision"]["plan"]["diff"][0]["after"] == 5
    assert shown.json()["plan_changed"] is False
    review = {"approve": True, "comment": "looks right"}
    anonymous = client.post(f"/api/v1/approval-links/{token}", json=review)
    assert anonymous.status_code == 401
    viewer = client.post(
        f"/api/v1/approval-links/{token}", json=review, headers=bearer(tokens["viewer"])
    )
    assert viewer.status_code == 403
    done = client.post(
        f"/api/v1/approval-links/{token}", json=review, headers=bearer(tokens["operator"])
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "approved"
    again = client.post(
        f"/api/v1/approval-links/{token}", json=review, headers=bearer(tokens["operator"])
    )
    assert again.status_code == 409
    assert "already used" in again.json()["detail"]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(f"/api/v1/approval-links/{tampered}").status_code == 422
    expired = links.sign(SECRET, decision_id, "x", datetime.now(UTC) - timedelta(seconds=1))
    assert client.get(f"/api/v1/approval-links/{expired}").status_code == 409


def test_an_approval_left_waiting_is_escalated_once(client, db, settings, tmp_path, oncall):
    routes = APPROVAL_ROUTES
    clock = Clock()
    notifier = Notifier(configured(settings, tmp_path, oncall, routes=routes), db, clock)
    post_alert(client, "e1")
    with db.read() as session:
        incident_id = session.scalars(select(IncidentRow.incident_id)).one()
    decision_id = waiting_decision(db, incident_id)
    notifier.cycle()
    assert oncall.under("/pagerduty") == []
    clock.advance(16 * 60)
    assert notifier.cycle().escalated == 1
    assert notifier.cycle().escalated == 0
    (page,) = [r.json for r in oncall.under("/pagerduty")]
    assert page["event_action"] == "trigger"
    assert page["dedup_key"] == f"aiops/approval/{decision_id}"
    assert page["payload"]["summary"].startswith("Approval still waiting (escalated)")


def test_bad_routes_are_refused_naming_the_file_key_and_value(settings, tmp_path, oncall, db):
    from controlplane.domain.errors import ConfigError

    routes = [{"name": "x", "events": ["incident.opened"], "channels": ["nowhere"]}]
    with pytest.raises(ConfigError, match="no channel named 'nowhere'") as caught:
        Notifier(configured(settings, tmp_path, oncall, routes=routes), db)
    assert "notifications.yaml" in str(caught.value)


def test_a_flapping_alert_keeps_its_incident_and_pages_once(client, db, settings, tmp_path, oncall):
    routes = [{"name": "page", "events": ALL_INCIDENT_EVENTS, "channels": ["pager"]}]
    clock = Clock()
    notifier = Notifier(configured(settings, tmp_path, oncall, routes=routes), db, clock)
    starts = ["2026-11-21T01:00:00Z", "2026-11-21T01:05:00Z", "2026-11-21T01:10:00Z"]
    for n, start in enumerate(starts):  # fires, resolves, fires again: three times
        for status in ("firing", "resolved"):
            body = notification(
                [
                    alert(
                        "flap", service="checkout", severity="critical", status=status, starts=start
                    )
                ],
                f"flap-{n}-{status}",
            )
            body["groupKey"] = "flapping-group"
            assert (
                client.post(WEBHOOK_URL, json=body, headers=bearer(WEBHOOK_TOKEN)).status_code
                == 200
            )
        notifier.cycle()
        clock.advance(60)
    with db.read() as session:
        (incident,) = session.scalars(select(IncidentRow)).all()  # one incident, not three
        reopened = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "incident.reopened")
        ).all()
    assert len(reopened) == 2
    assert incident.status == "resolved"
    clock.advance(601)
    notifier.cycle()
    pages = [r.json["event_action"] for r in oncall.under("/pagerduty")]
    assert pages == ["trigger", "resolve"]  # one page, and one resolution once it held
    statuses = sorted(m.status for m in messages(db))
    assert statuses == ["muted", "muted", "sent", "sent"]  # the resolutions that did not hold
