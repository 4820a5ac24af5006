"""The on-call story, in headless Chromium, against the demo's own configuration: its
backends (the Kubernetes stand-in, the live shop, a real Prometheus scraping it), its shipped
policies and its scenario alerts, with the API running its own loops as `make demo` does.

An operator signs in, sees what needs a human, opens the anomaly incident (its chart), approves
the pending scale-out and sees it confirmed and then verified, sees the automatic restart that
failed verification rolled back, and then (signed in again as an admin) pauses automation
with a reason. Every step is asserted on what the page shows; screenshots are kept for the
README (`docs/screenshots/story-*.png` are copies).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from controlplane.api import create_app
from controlplane.config import Settings, load_settings
from controlplane.demo import Scenario, _am_alert, _DirectSink
from controlplane.demo import backends as demo_backends
from controlplane.policy.runner import shipped_policies
from controlplane.testing.servers import ApiServer, Console
from tests.e2e.chromium import Chromium, find_chromium
from tests.factories import bearer, wait_for, wait_until_scraped

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "story"
#: Verification budgets a test can wait for (the shipped ones are 60 s and 120 s).
NAV = '[data-testid="stSidebarNav"] a span'
BUDGETS = {"search-crashloop-restart": 5, "checkout-latency-scale-out": 60}


@pytest.fixture
def story(tmp_path: Path, settings: Settings, db, tokens) -> Iterator[tuple[str, str]]:
    if settings.database.url.startswith("postgresql"):
        pytest.skip("the browser run uses the SQLite store (the AppTest suite covers both)")
    if find_chromium() is None:
        pytest.skip("Chromium is not installed: make system-deps installs it (Debian chromium)")
    with contextlib.ExitStack() as stack:
        backends = demo_backends(stack, tmp_path)
        if backends.prometheus is None:
            pytest.skip("Prometheus is not installed")
        wait_until_scraped(backends.prometheus.url)
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            incidents={"group_by": "service"},
            **{
                **backends.sections,
                "automation": _quick(backends.sections["automation"], tmp_path),
            },
        )
        api = stack.enter_context(ApiServer(create_app(config, db)))
        wanted = {"HighLatency": "checkout", "PodCrashLooping": "search"}
        alerts = [a for a in Scenario.load().alerts if wanted.get(a.name) == a.service]
        sink = _DirectSink(f"{api.url}/api/v1/webhooks/alertmanager", tokens["webhook"])
        sink.post_alerts([_am_alert(a, datetime.now(UTC), ends=None) for a in alerts])
        console_settings = config.model_copy(
            update={"console": config.console.model_copy(update={"api_url": api.url})}
        )
        console = stack.enter_context(Console(console_settings, log=tmp_path / "console.log"))
        yield api.url, console.url


def _quick(automation: dict, folder: Path) -> dict:
    """The demo's automation settings, with the shipped policies' verification budgets cut."""
    shipped = yaml.safe_load((shipped_policies() / "shop.yaml").read_text())
    for policy in shipped["policies"]:
        if policy["name"] in BUDGETS:
            policy.setdefault("verify", {})["timeout_seconds"] = BUDGETS[policy["name"]]
    policies = folder / "policies"
    policies.mkdir()
    (policies / "shop.yaml").write_text(yaml.safe_dump(shipped))
    return {**automation, "policies_dir": str(policies)}


def decisions(api_url: str, tokens) -> dict[str, dict]:
    answer = httpx.get(f"{api_url}/api/v1/decisions", headers=bearer(tokens["viewer"]))
    return {d["policy"]: d for d in answer.json()["data"]}


def test_the_on_call_story_in_a_real_browser(story, tokens):
    api_url, console_url = story
    scale = wait_for(
        lambda: decisions(api_url, tokens).get("checkout-latency-scale-out"),
        what="the scale-out to wait for approval",
    )
    assert scale["status"] == "pending_approval"
    number = scale["decision_id"]
    with Chromium(find_chromium() or "chromium") as browser:
        browser.navigate(console_url)
        browser.wait_for_text("API token")
        browser.type_into('input[type="password"]', tokens["operator"])
        browser.click_text("button", "Sign in")
        browser.wait_for_text("Needs a human")
        browser.wait_for_text("HighLatency: p95 latency 2.4 s")  # the paging incident, linked
        browser.screenshot(ARTIFACTS / "overview.png")

        # The anomaly detection finds on checkout's latency (it joins checkout's open
        # incident), with its chart.
        anomaly = wait_for(
            lambda: _with_anomaly(api_url, tokens),
            timeout=240,
            what="the anomaly incident (three 30 s points in a row)",
        )
        link = f"#{anomaly['incident_id']} {anomaly['title']}"
        browser.click_text(NAV, "Overview")
        browser.wait_for_text(link)
        browser.click_text("a", link)  # Overview's link opens the incident (its deep link)
        browser.wait_for_text("Root-cause hints")
        browser.wait_for_text("Open in Prometheus")
        assert browser.evaluate("document.querySelectorAll('.vega-embed').length") >= 1
        browser.evaluate("document.querySelector('.vega-embed').scrollIntoView({block: 'end'})")
        browser.screenshot(ARTIFACTS / "anomaly.png")

        # Approve the scale-out: confirmed at once, then executed and verified.
        browser.click_text(NAV, "Approvals")
        browser.wait_for_text(f"Approve #{number}")
        browser.type_into(
            f'input[aria-label="Comment on #{number} (required)"]', "p95 2.4 s: add pods"
        )
        browser.evaluate("document.activeElement.blur()")  # commit the text input
        browser.wait_for_text(f"Approve #{number}")
        browser.click_text("button", f"Approve #{number}")
        browser.wait_for_text("approved by test-operator")
        browser.screenshot(ARTIFACTS / "approved.png")
        done = wait_for(
            lambda: _finished(decisions(api_url, tokens)["checkout-latency-scale-out"]),
            timeout=120,
            what="the scale-out to be verified",
        )
        assert done["status"] == "succeeded", done["reason"]

        # The automatic restart that could not cure the crash loop, rolled back, on Actions.
        restart = wait_for(
            lambda: _finished(decisions(api_url, tokens)["search-crashloop-restart"]),
            timeout=60,
            what="the restart's verification",
        )
        assert restart["status"] == "rolled_back"
        browser.click_text(NAV, "Actions and audit")
        browser.wait_for_text("1 rolled back, 1 succeeded")
        browser.screenshot(ARTIFACTS / "actions.png")

        # Enough automation for tonight: an admin pulls the kill switch, with a reason.
        browser.click_text("button", "Sign out")
        browser.wait_for_text("API token")
        browser.type_into('input[type="password"]', tokens["admin"])
        browser.click_text("button", "Sign in")
        browser.wait_for_text("Signed in as test-admin")
        browser.click_text(NAV, "Approvals")
        browser.wait_for_text("Kill switch")
        browser.evaluate(  # open the expander
            "[...document.querySelectorAll('summary')]"
            ".find(s => s.innerText.includes('Kill switch')).click()"
        )
        browser.wait_for_text("Reason (required, audited)")
        browser.type_into('input[aria-label="Reason (required, audited)"]', "freeze for the night")
        browser.evaluate("document.activeElement.blur()")
        browser.wait_for_text("Yes: stop every automated change now")
        browser.tick("Yes: stop every automated change now")
        browser.wait_for_text("Pause all automation")
        browser.click_text("button", "Pause all automation")
        browser.wait_for_text("Automation is paused by test-admin: freeze for the night")
        browser.screenshot(ARTIFACTS / "paused.png")
    switch = httpx.get(f"{api_url}/api/v1/automation", headers=bearer(tokens["viewer"])).json()
    assert (switch["paused"], switch["reason"]) == (True, "freeze for the night")


def _with_anomaly(api_url: str, tokens) -> dict | None:
    """The incident detection's evidence went to (it joins checkout's open incident)."""
    viewer = bearer(tokens["viewer"])
    for incident in httpx.get(f"{api_url}/api/v1/incidents", headers=viewer).json()["data"]:
        detail = httpx.get(
            f"{api_url}/api/v1/incidents/{incident['incident_id']}", headers=viewer
        ).json()
        if any(e["kind"] == "anomaly" for e in detail["evidence"]):
            return detail
    return None


def _finished(decision: dict) -> dict | None:
    return decision if decision["status"] not in ("approved", "executing") else None
