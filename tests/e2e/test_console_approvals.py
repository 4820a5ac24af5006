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
from remediations import Kube
from tests.factories import WEBHOOK_TOKEN, alertmanager_fixture, bearer, signed_in

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")
LINK_SECRET = "a-link-secret-of-at-least-32-characters"
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
    yield from _pending(settings, db, monkeypatch, [POLICY])


@pytest.fixture
def two_pending(settings, db, tokens, monkeypatch) -> Iterator[str]:
    second = Policy.model_validate(  # another target, so the cooldown lets both wait
        {**POLICY.model_dump(), "name": "search-scale", "action": {
            "type": "scale_deployment", "deployment": "search", "by": 1}}
    )  # fmt: skip
    yield from _pending(settings, db, monkeypatch, [POLICY, second])


@pytest.fixture
def stale(settings, db, tokens, monkeypatch) -> Iterator[str]:
    """The pending scale-out, after someone scaled checkout by hand: stale."""
    yield from _pending(settings, db, monkeypatch, [POLICY], moved=True)


def _pending(
    settings, db, monkeypatch, policies: list[Policy], *, moved: bool = False
) -> Iterator[str]:
    with FakeKube() as cluster:
        cluster.add_deployment("shop", "checkout", replicas=2)
        cluster.add_deployment("shop", "search", replicas=2)
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            auth={"webhook_token": WEBHOOK_TOKEN},
            automation={"kubernetes": {"host": cluster.url}},
            notifications={"link_secret": LINK_SECRET},
        )
        with ApiServer(create_app(config, db)) as server:
            monkeypatch.setenv("AIOPS_CONSOLE__API_URL", server.url)
            httpx.post(
                f"{server.url}/api/v1/webhooks/alertmanager",
                json=alertmanager_fixture("sample"),
                headers=bearer(WEBHOOK_TOKEN),
            ).raise_for_status()
            PolicyRunner(config, db, policies=policies).cycle()
            if moved:
                by_hand = Kube(host=cluster.url, timeout_seconds=5)
                by_hand.patch_scale("Deployment", "shop", "checkout", 5, dry_run=False)
                PolicyRunner(config, db, policies=policies).cycle()  # checks waiting plans
            yield server.url


def page(token: str, role: str, name: str) -> AppTest:
    return signed_in(token, role, name, "approvals")


def pending_ids(api_url: str, tokens) -> list[int]:
    answer = httpx.get(
        f"{api_url}/api/v1/decisions",
        params={"status": "pending_approval"},
        headers=bearer(tokens["viewer"]),
    )
    return sorted(d["decision_id"] for d in answer.json()["data"])


def test_pending_decision_shows_plan_and_guardrails(pending, tokens):
    app = page(tokens["viewer"], "viewer", "test-viewer")
    assert not app.exception
    assert app.subheader[0].value == "Waiting for approval (1)"
    assert '+  "replicas": 3' in app.code[0].value
    guardrails = app.dataframe[0].value
    assert "kill switch" in set(guardrails["guardrail"])
    (number,) = pending_ids(pending, tokens)
    assert app.button(key=f"approve-{number}").disabled
    assert app.button(key=f"reject-{number}").disabled
    assert app.button(key="switch").disabled  # the kill switch is for admins


def test_operator_approves_with_a_comment(pending, tokens):
    (number,) = pending_ids(pending, tokens)
    app = page(tokens["operator"], "operator", "test-operator")
    app.button(key=f"approve-{number}").click().run()
    assert app.error[0].value == f"A comment is required to approve #{number}."
    app.text_input(key=f"review-comment-{number}").input("scale, p95 is 2 s").run()
    app.button(key=f"approve-{number}").click().run()
    assert not app.exception
    decisions = httpx.get(f"{pending}/api/v1/decisions", headers=bearer(tokens["viewer"])).json()
    (decision,) = decisions["data"]
    assert (decision["status"], decision["reviewed_by"]) == ("approved", "test-operator")
    assert decision["review_comment"] == "scale, p95 is 2 s"
    assert decision["reason"] == "approved by test-operator; runs next"  # not "waiting for..."
    assert app.subheader[0].value == "Waiting for approval (0)"
    assert app.success[0].value.startswith(f"#{number} (checkout-scale: ")
    assert "approved by test-operator" in app.success[0].value
    # Signing out forgets the session: the next person to sign in here sees none of it.
    app.button(key="sign-out").click().run()
    assert app.text_input[0].label == "API token"
    assert "review_done" not in app.session_state
    assert f"review-comment-{number}" not in app.session_state


def test_admin_pulls_the_kill_switch(pending, tokens):
    app = page(tokens["admin"], "admin", "test-admin")
    assert app.button(key="switch").disabled  # no reason, no confirmation
    app.text_input(key="switch_reason").input("change freeze").run()
    assert app.button(key="switch").disabled  # a reason, but not confirmed
    app.checkbox(key="switch_confirm").check().run()
    app.button(key="switch").click().run()
    assert "Automation is **paused** by test-admin: change freeze" in app.warning[0].value
    (number,) = pending_ids(pending, tokens)
    assert app.button(key=f"approve-{number}").disabled
    state = httpx.get(f"{pending}/api/v1/automation", headers=bearer(tokens["viewer"])).json()
    assert state["paused"] is True


def test_operator_rejects_with_a_comment(pending, tokens):
    app = page(tokens["operator"], "operator", "test-operator")
    (number,) = pending_ids(pending, tokens)
    app.text_input(key=f"review-comment-{number}").input("latency is a dependency, not load").run()
    app.button(key=f"reject-{number}").click().run()
    assert not app.exception
    (decision,) = httpx.get(f"{pending}/api/v1/decisions", headers=bearer(tokens["viewer"])).json()[
        "data"
    ]
    assert (decision["status"], decision["reviewed_by"]) == ("rejected", "test-operator")


def test_after_an_approval_no_other_item_inherits_the_click_or_the_comment(two_pending, tokens):
    """The console used to jump to the next pending decision with the old comment still in
    the box and the same button under the cursor: one more click approved another change."""
    first, second = pending_ids(two_pending, tokens)
    app = page(tokens["operator"], "operator", "test-operator")
    app.text_input(key=f"review-comment-{first}").input("p95 is 2 s: scale out").run()
    app.button(key=f"approve-{first}").click().run()
    assert not app.exception
    assert app.success[0].value.startswith(f"#{first} (")
    assert "approved by test-operator" in app.success[0].value
    assert app.subheader[0].value == "Waiting for approval (1)"
    assert app.text_input(key=f"review-comment-{second}").value == ""
    app.button(key=f"approve-{second}").click().run()  # the same click again
    assert app.error[0].value == f"A comment is required to approve #{second}."
    assert pending_ids(two_pending, tokens) == [second]


def test_an_operator_approves_from_the_incident_page(pending, tokens):
    (number,) = pending_ids(pending, tokens)
    decision = httpx.get(
        f"{pending}/api/v1/decisions/{number}", headers=bearer(tokens["viewer"])
    ).json()
    app = signed_in(tokens["operator"], "operator", "test-operator", "incidents")
    app.button(key=f"open-incident-{decision['incident_id']}").click().run()
    assert not app.exception
    assert '+  "replicas": 3' in app.code[-1].value  # the plan's diff, beside the incident
    app.text_input(key=f"review-comment-{number}").input("checked the graph: scale").run()
    app.button(key=f"approve-{number}").click().run()
    assert not app.exception
    assert "approved by test-operator" in app.success[0].value
    assert pending_ids(pending, tokens) == []


def test_a_decision_link_opens_it_with_its_buttons_once(pending, tokens):
    (number,) = pending_ids(pending, tokens)
    app = page(tokens["operator"], "operator", "test-operator")
    app.query_params["decision"] = str(number)
    app.run()
    assert not app.exception
    assert app.subheader[0].value == f"Decision #{number}: pending_approval"
    assert [b.key for b in app.button].count(f"approve-{number}") == 1  # not again in the list
    app.query_params["decision"] = "x1"
    app.run()
    assert "not a decision number" in app.error[0].value


def test_a_stale_decision_is_planned_again_from_its_link(stale, tokens):
    decisions = httpx.get(f"{stale}/api/v1/decisions", headers=bearer(tokens["viewer"])).json()
    (decision,) = decisions["data"]
    number = decision["decision_id"]
    assert decision["status"] == "stale"
    app = page(tokens["operator"], "operator", "test-operator")
    app.query_params["decision"] = str(number)
    app.run()
    assert f"#{number} is stale: the target changed since the plan" in app.warning[0].value
    app.button(key=f"replan-{number}").click().run()
    assert app.error[0].value == f"A comment is required to plan #{number} again."
    app.text_input(key=f"replan-comment-{number}").input("scaled by hand to 5").run()
    app.button(key=f"replan-{number}").click().run()
    assert not app.exception
    assert app.success[0].value.startswith(
        f"#{number} (checkout-scale): a new plan was asked for by test-operator: "
        "scaled by hand to 5"
    )
    assert app.subheader[0].value == f"Decision #{number}: replanning"  # the same decision
    assert f"replan-{number}" not in [b.key for b in app.button]  # nothing left to click
    after = httpx.get(f"{stale}/api/v1/decisions/{number}", headers=bearer(tokens["viewer"]))
    assert after.json()["status"] == "replanning"


def test_a_signed_link_from_a_message_approves_the_plan_it_showed_once(pending, tokens):
    from datetime import UTC, datetime, timedelta

    from controlplane.notifications import links

    (number,) = pending_ids(pending, tokens)
    decision = httpx.get(
        f"{pending}/api/v1/decisions/{number}", headers=bearer(tokens["viewer"])
    ).json()
    expires = datetime.now(UTC) + timedelta(hours=1)
    link = links.sign(LINK_SECRET, number, decision["plan_digest"], expires)
    app = page(tokens["operator"], "operator", "test-operator")
    app.query_params["decision"] = str(number)
    app.query_params["link"] = link
    app.run()
    assert not app.exception
    assert app.info[0].value.startswith("Opened from a signed approval link, valid until")
    app.text_input(key=f"review-comment-{number}").input("approved from Slack").run()
    app.button(key=f"approve-{number}").click().run()
    assert "approved by test-operator" in app.success[0].value
    used = httpx.post(
        f"{pending}/api/v1/approval-links/{link}",
        json={"approve": True, "comment": "again"},
        headers=bearer(tokens["operator"]),
    )
    assert used.status_code == 409
    app.run()
    assert any("already used" in i.value for i in app.info)


def test_a_link_to_a_plan_made_again_cannot_approve_the_new_one(pending, tokens):
    from datetime import UTC, datetime, timedelta

    from controlplane.notifications import links

    (number,) = pending_ids(pending, tokens)
    old = links.sign(LINK_SECRET, number, "an-older-plan", datetime.now(UTC) + timedelta(hours=1))
    app = page(tokens["operator"], "operator", "test-operator")
    app.query_params["decision"] = str(number)
    app.query_params["link"] = old
    app.run()
    assert "The plan changed since the message was sent" in app.warning[0].value
    assert app.button(key=f"approve-{number}")  # reviewed here, with the plan shown now
