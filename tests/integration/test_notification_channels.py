"""The contract every notification channel keeps, parametrised over the registry (a channel
registered without a scenario here fails `test_every_channel_has_a_scenario`), against
loopback services that check requests as the real ones do (controlplane.testing.oncall) and
a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cloudevents.core.bindings import http as ce_http

from controlplane.domain.errors import ConfigError, PermanentError, TemporaryError
from controlplane.notifications import REGISTRY, pagerduty, routing
from controlplane.notifications.base import IDEMPOTENCY_HEADER
from controlplane.notifications.events import Decision, Event, EventType, Incident, summary
from controlplane.testing.oncall import GRAFANA_TOKEN, SLACK_TOKEN, OnCallServices
from controlplane.testing.servers import free_port

pytestmark = pytest.mark.integration

PD_KEY = "R0UT1NGKEY0123456789ABCDEFGHIJKL"


@dataclass
class Mailbox:
    """aiosmtpd handler: keeps messages; `refuse_rcpt` answers RCPT with that reply."""

    messages: list[Envelope] = field(default_factory=list)
    refuse_rcpt: str | None = None
    refuse_data: str | None = None

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.refuse_data:
            return self.refuse_data
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@dataclass
class Env:
    services: OnCallServices
    mailbox: Mailbox
    smtp_port: int


@pytest.fixture(scope="module")
def services() -> Iterator[OnCallServices]:
    with OnCallServices() as running:
        yield running


@pytest.fixture
def env(services: OnCallServices) -> Iterator[Env]:
    services.requests.clear()
    services.refused.clear()
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield Env(services, mailbox, controller.port)
    finally:
        controller.stop()


def _params(name: str, env: Env, **extra: Any) -> dict[str, Any]:
    return {**SCENARIOS[name](env), **extra}


# Per channel: its parameters against the loopback services.
SCENARIOS: dict[str, Callable[[Env], dict[str, Any]]] = {
    "slack_webhook": lambda e: {
        "type": "slack_webhook",
        "url": f"{e.services.url}/slack/webhook/T000/B000/XXXX",
    },
    "slack_api": lambda e: {
        "type": "slack_api",
        "token": SLACK_TOKEN,
        "channel": "#oncall",
        "base_url": f"{e.services.url}/slack/api/",
    },
    "teams": lambda e: {"type": "teams", "url": f"{e.services.url}/teams/workflows/abc"},
    "pagerduty": lambda e: {
        "type": "pagerduty",
        "routing_key": PD_KEY,
        "url": f"{e.services.url}/pagerduty",
    },
    "webhook": lambda e: {"type": "webhook", "url": f"{e.services.url}/hook/any"},
    "email": lambda e: {
        "type": "email",
        "host": "127.0.0.1",
        "port": e.smtp_port,
        "security": "none",
        "sender": "aiops@example.org",
        "to": ["oncall@example.org"],
    },
    "cloudevents": lambda e: {"type": "cloudevents", "url": f"{e.services.url}/ce/sink"},
    "grafana_annotation": lambda e: {
        "type": "grafana_annotation",
        "url": f"{e.services.url}/grafana",
        "token": GRAFANA_TOKEN,
    },
}

# Where each channel's requests go (email: none, it speaks SMTP).
PREFIX = {
    "slack_webhook": "/slack/webhook",
    "slack_api": "/slack/api",
    "teams": "/teams",
    "pagerduty": "/pagerduty",
    "webhook": "/hook",
    "cloudevents": "/ce",
    "grafana_annotation": "/grafana",
}


def channel_for(name: str, params: dict[str, Any]):
    loaded = routing.parse({"channels": {"c": params}}, "test")
    return REGISTRY[name](loaded.channels["c"])


def event(kind: EventType = EventType.APPROVAL_WAITING, number: int = 1) -> Event:
    incident = Incident(
        id=number,
        title=f"HighLatency: checkout p99 over 2 s ({number})",
        severity="critical",
        status="open",
        service="checkout",
        labels={"namespace": "shop", "service": "checkout"},
        opened_at="2026-12-04T10:00:00+00:00",
    )
    decision = Decision(
        id=10 + number,
        policy="scale-checkout",
        action="scale",
        target="Deployment/shop/checkout",
        status="pending_approval",
        reason="waiting for approval",
        mode="approval",
        diff=[{"path": "spec.replicas", "before": 3, "after": 5}],
    )
    with_decision = not kind.value.startswith("incident.")
    return Event(
        id=f"audit-{100 + number}",
        type=kind,
        at="2026-12-04T10:01:00+00:00",
        actor="policy-engine",
        summary=summary(kind, incident, decision if with_decision else None),
        incident=incident,
        decision=decision if with_decision else None,
        links={
            "console": "http://127.0.0.1:8501/incidents?incident=1",
            "approve": "http://127.0.0.1:8501/approvals?decision=11&link=abc.def",
        },
    )


def received(name: str, env: Env) -> list[bytes]:
    if name == "email":
        return [m.content for m in env.mailbox.messages]  # type: ignore[misc]
    return [r.body for r in env.services.under(PREFIX[name])]


def test_every_channel_has_a_scenario():
    assert set(SCENARIOS) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_delivers_what_the_service_accepts(name, env):
    channel = channel_for(name, _params(name, env))
    receipt = channel.send([event()], key="msg-1")
    assert receipt
    assert env.services.refused == []
    bodies = received(name, env)
    assert len(bodies) == 1
    assert b"scale-checkout" in bodies[0]  # what the reader needs is in the message
    if name != "email":
        (request,) = env.services.under(PREFIX[name])
        if name != "slack_api":  # slack-sdk sends its own headers
            assert request.headers[IDEMPOTENCY_HEADER.lower()].startswith("msg-1")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_group_is_one_message_unless_the_service_takes_one_event_per_request(name, env):
    storm = [event(EventType.INCIDENT_OPENED, n) for n in range(1, 31)]
    channel = channel_for(name, _params(name, env))
    channel.send(storm, key="storm")
    assert env.services.refused == []
    assert len(received(name, env)) == (30 if channel.per_event else 1)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_an_outage_is_temporary(name, env):
    channel = channel_for(name, _params(name, env))
    if name == "email":
        env.mailbox.refuse_data = "451 4.3.0 try again later"
    else:
        env.services.fail(PREFIX[name], 503)
    with pytest.raises(TemporaryError):
        channel.send([event()], key="k")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_refusal_is_permanent(name, env):
    if name == "email":
        env.mailbox.refuse_rcpt = "550 5.1.1 no such user"
        params = _params(name, env)
    elif name == "slack_api":
        params = _params(name, env, token="xoxb-revoked")  # Slack answers ok: false
    else:
        env.services.fail(PREFIX[name], 404)
        params = _params(name, env)
    with pytest.raises(PermanentError):
        channel_for(name, params).send([event()], key="k")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_an_unreachable_service_is_temporary(name, env):
    closed = f"http://127.0.0.1:{free_port()}"
    params = _params(name, env)
    for key in ("url", "base_url"):
        if key in params:
            params[key] = closed + "/x/"
    if name == "email":
        params["port"] = free_port()
    with pytest.raises(TemporaryError):
        channel_for(name, params).send([event()], key="k")


def test_pagerduty_pages_per_incident_and_posts_what_automation_did_as_change_events(env):
    channel = channel_for("pagerduty", _params("pagerduty", env))
    for kind in (
        EventType.INCIDENT_OPENED,
        EventType.INCIDENT_ACKNOWLEDGED,
        EventType.ACTION_EXECUTED,
        EventType.INCIDENT_RESOLVED,
    ):
        channel.send([event(kind)], key=kind.value)
    alerts = [r.json for r in env.services.under("/pagerduty/v2/enqueue")]
    assert [a["event_action"] for a in alerts] == ["trigger", "acknowledge", "resolve"]
    assert {a["dedup_key"] for a in alerts} == {"aiops/incident/1"}
    assert alerts[0]["payload"]["severity"] == "critical"
    assert alerts[0]["payload"]["component"] == "checkout"
    console = {"href": "http://127.0.0.1:8501/incidents?incident=1", "text": "Open in the console"}
    assert console in alerts[0]["links"]
    (change,) = [r.json for r in env.services.under("/pagerduty/v2/change/enqueue")]
    assert change["payload"]["summary"].startswith("Executed: scale-checkout")
    assert "event_action" not in change  # a change event pages nobody
    assert pagerduty.dedup_key(event(EventType.APPROVAL_WAITING)) == "aiops/approval/11"


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_cloudevents_read_back_with_the_sdk(env, mode):
    channel = channel_for("cloudevents", _params("cloudevents", env, mode=mode))
    channel.send([event(EventType.ACTION_VERIFIED)], key="k")
    (request,) = env.services.under("/ce")
    if mode == "binary":
        assert request.headers["ce-specversion"] == "1.0"
        assert request.headers["content-type"] == "application/json"
    else:
        assert request.headers["content-type"].startswith("application/cloudevents+json")
    read = ce_http.from_http_event(ce_http.HTTPMessage(request.headers, request.body))
    assert read.get_type() == "io.aiops.controlplane.action.verified"
    assert read.get_id() == "audit-101"
    assert read.get_subject() == "decision/11"
    assert read.get_data()["decision"]["policy"] == "scale-checkout"


def test_the_webhook_template_is_sandboxed_and_checked_when_loaded(env):
    template = '{"title": {{ headline | tojson }}, "n": {{ events | length }}}'
    channel = channel_for("webhook", _params("webhook", env, template=template))
    channel.send([event(), event(number=2)], key="k")
    (request,) = env.services.under("/hook")
    assert json.loads(request.body)["n"] == 2
    escape = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(PermanentError, match="webhook template"):
        channel_for("webhook", _params("webhook", env, template=escape)).send([event()], key="k")
    with pytest.raises(ConfigError, match=r"channels\.c\.template = .*Jinja2"):
        channel_for("webhook", _params("webhook", env, template="{% if %}"))


def test_email_is_plain_text_and_html_with_the_links(env):
    channel = channel_for("email", _params("email", env))
    channel.send([event()], key="msg/7")
    (envelope,) = env.mailbox.messages
    assert envelope.rcpt_tos == ["oncall@example.org"]
    mail = message_from_bytes(envelope.content, policy=policy.default)  # type: ignore[arg-type]
    assert mail["Subject"].startswith("[aiops] Approval waiting: scale-checkout")
    assert mail["X-Aiops-Key"] == "msg/7"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "approvals?decision=11&link=abc.def" in text
    assert "approvals?decision=11&amp;link=abc.def" in html


def test_slack_api_posts_block_kit_with_the_approval_as_primary_button(env):
    channel = channel_for("slack_api", _params("slack_api", env))
    assert "ts=" in channel.send([event()], key="k")
    (request,) = env.services.under("/slack/api")
    body = request.json
    assert body["channel"] == "#oncall"
    actions = [block for block in body["blocks"] if block["type"] == "actions"]
    buttons = [button for block in actions for button in block["elements"]]
    (approve,) = [b for b in buttons if b.get("style") == "primary"]
    assert approve["url"].endswith("link=abc.def")


def test_bad_channel_parameters_name_the_key_and_never_show_secrets():
    with pytest.raises(ConfigError) as caught:
        routing.parse(
            {"channels": {"pd": {"type": "pagerduty", "routing_key": 5, "colour": "red"}}}, "f.yaml"
        )
    message = str(caught.value)
    assert "channels.pd.colour = 'red'" in message
    assert "channels.pd.routing_key" in message


def test_the_readme_worked_example_loads(monkeypatch):
    from pathlib import Path

    import yaml

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("```yaml\nchannels:", 1)[1].split("```", 1)[0]
    for name in (
        "SLACK_WEBHOOK_URL",
        "SLACK_BOT_TOKEN",
        "PAGERDUTY_ROUTING_KEY",
        "TEAMS_WORKFLOW_URL",
        "SMTP_PASSWORD",
        "GRAFANA_TOKEN",
    ):
        monkeypatch.setenv(name, f"value-of-{name}")
    loaded = routing.parse(yaml.safe_load("channels:" + block), "README.md")
    assert set(loaded.channels) == {
        "oncall-slack", "slack-bot", "pager", "teams", "mail", "bus", "grafana", "ticketing",
    }  # fmt: skip
    assert {p.type for p in loaded.channels.values()} == set(REGISTRY)  # every channel shown
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    with pytest.raises(ConfigError, match="environment variable SLACK_BOT_TOKEN is not set"):
        routing.parse(yaml.safe_load("channels:" + block), "README.md")
