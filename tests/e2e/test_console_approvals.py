"""The Approvals page, driven by AppTest against the real API, with a decision planned by the
policy loop against the fake Kubernetes API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from controlplane.api import create_app
from controlplane.config import load_settings
from controlplane.policy.runner import PolicyRunner
from controlplane.policy.schema import Policy
from controlplane.testing.kube import FakeKube
from controlplane.testing.servers import ApiServer
from tests.factories import WEBHOOK_TOKEN, alertmanager_fixture, bearer, signed_in

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")
pytestmark = pytest.mark.integration
POLICY = Policy.model_validate(
    {
        "name": "checkout-scale",
        "runbook": "scale-deployment",
        "match": {"service": ["checkout"]},
        "action": {"type": "scale_deployment", "deployment": "checkout", "by": 1},
        "mode": "approval",
    }
)


@pytest.fixture
def pending(settings, db, tokens, monkeypatch) -> Iterator[str]:
    with FakeKube() as cluster:
        cluster.add_deployment("shop", "checkout", replicas=2)
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            auth={"webhook_token": WEBHOOK_TOKEN},
            automation={"kubernetes": {"host": cluster.url}},
        )
        with ApiServer(create_app(config, db)) as server:
            monkeypatch.setenv("AIOPS_CONSOLE__API_URL", server.url)
            httpx.post(
                f"{server.url}/api/v1/webhooks/alertmanager",
                json=alertmanager_fixture("sample"),
                headers=bearer(WEBHOOK_TOKEN),
            ).raise_for_status()
            PolicyRunner(config, db, policies=[POLICY]).cycle()
            yield server.url


def page(token: str, role: str, name: str) -> AppTest:
    return signed_in(token, role, name, "approvals")


def test_pending_decision_shows_plan_and_guardrails(pending, tokens):
    app = page(tokens["viewer"], "viewer", "test-viewer")
    assert not app.exception
    assert app.subheader[0].value == "Waiting for approval (1)"
    assert '+  "replicas": 3' in app.code[0].value
    guardrails = app.dataframe[0].value
    assert "kill switch" in set(guardrails["guardrail"])
    assert app.button(key="approve").disabled
    assert app.button(key="reject").disabled
    assert app.button(key="switch").disabled  # the kill switch is for admins


def test_operator_approves_with_a_comment(pending, tokens):
    app = page(tokens["operator"], "operator", "test-operator")
    app.button(key="approve").click().run()
    assert app.error[0].value == "A comment is required: say why."
    app.text_input(key="review_comment").input("scale, p95 is 2 s").run()
    app.button(key="approve").click().run()
    assert not app.exception
    decisions = httpx.get(f"{pending}/api/v1/decisions", headers=bearer(tokens["viewer"])).json()
    (decision,) = decisions["data"]
    assert (decision["status"], decision["reviewed_by"]) == ("approved", "test-operator")
    assert decision["review_comment"] == "scale, p95 is 2 s"
    assert app.subheader[0].value == "Waiting for approval (0)"


def test_admin_pulls_the_kill_switch(pending, tokens):
    app = page(tokens["admin"], "admin", "test-admin")
    assert app.button(key="switch").disabled  # no reason, no confirmation
    app.text_input(key="switch_reason").input("change freeze").run()
    assert app.button(key="switch").disabled  # a reason, but not confirmed
    app.checkbox(key="switch_confirm").check().run()
    app.button(key="switch").click().run()
    assert "Automation is **paused** by test-admin: change freeze" in app.warning[0].value
    assert app.button(key="approve").disabled
    state = httpx.get(f"{pending}/api/v1/automation", headers=bearer(tokens["viewer"])).json()
    assert state["paused"] is True


def test_operator_rejects_with_a_comment(pending, tokens):
    app = page(tokens["operator"], "operator", "test-operator")
    app.text_input(key="review_comment").input("latency is a dependency, not load").run()
    app.button(key="reject").click().run()
    assert not app.exception
    (decision,) = httpx.get(f"{pending}/api/v1/decisions", headers=bearer(tokens["viewer"])).json()[
        "data"
    ]
    assert (decision["status"], decision["reviewed_by"]) == ("rejected", "test-operator")
