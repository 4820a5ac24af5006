"""The console in a real browser: the API and `streamlit run` on loopback, headless Chromium
driven over the DevTools protocol. The store holds 10,000 incidents and 100,000 audit rows
besides the live scenario: a pending approval, and a capacity report of the demo shop read
from a real Prometheus. Every page is loaded, checked for its key elements, timed and
screenshotted into `.artifacts/console/`; one flow, approving a pending action, is clicked
through.

Timings are written to `.artifacts/console/timings.json` and printed, never asserted (see
docs/benchmarks.md for the recorded figures).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import insert

from controlplane.api import create_app
from controlplane.capacity.job import CapacityJob
from controlplane.config import Settings, load_settings
from controlplane.policy.runner import PolicyRunner
from controlplane.storage import Database, audit
from controlplane.storage.models import AuditEventRow, IncidentRow
from controlplane.testing.kube import FakeKube
from controlplane.testing.servers import ApiServer, Console
from tests.e2e.chromium import Chromium, find_chromium
from tests.factories import WEBHOOK_TOKEN, alertmanager_fixture, bearer, shop_capacity

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "console"
INCIDENTS, AUDIT_ROWS = 10_000, 100_000
PAGES = [  # (sidebar link, text that proves the page rendered its data)
    ("Overview", "Open incidents"),
    ("Incidents", "incident(s) match"),
    ("Approvals", "Waiting for approval (1)"),
    ("Actions and audit", "audit event(s) match"),
    ("Capacity", "Report history"),
    ("Policies and runbooks", "Policy backtest"),
]


def bulk_history(db: Database) -> None:
    """10,000 incidents and 100,000 audit rows, written in bulk (what a busy year leaves)."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    services = [f"svc-{i:03d}" for i in range(300)]
    incidents = []
    for n in range(INCIDENTS):
        opened = now - timedelta(minutes=5 * (INCIDENTS - n) + 60)
        resolved = n < INCIDENTS - 40
        incidents.append(
            {
                "title": f"HighLatency: {rng.choice(services)} p95 above SLO",
                "status": "resolved" if resolved else "open",
                "severity": rng.choice(["critical", "error", "warning", "info"]),
                "service": rng.choice(services),
                "source": "alertmanager",
                "group_key": f"history/{n}",
                "labels": {"alertname": "HighLatency"},
                "opened_at": opened,
                "updated_at": opened,
                "resolved_at": opened + timedelta(minutes=20) if resolved else None,
                "resolved_by": "alertmanager" if resolved else None,
            }
        )
    rows = [
        audit.entry(
            actor=rng.choice(["alertmanager", "alice", "bob", "policy-engine"]),
            action=rng.choice(["incident.opened", "incident.acknowledged", "incident.resolved"]),
            target_type="incident",
            target_id=rng.randrange(1, INCIDENTS),
            details={"n": n},
            at=now - timedelta(seconds=30 * (AUDIT_ROWS - n)),
        )
        for n in range(AUDIT_ROWS)
    ]
    with db.write() as session:
        session.execute(insert(IncidentRow), incidents)
        session.execute(insert(AuditEventRow), rows)


@pytest.fixture
def stack(
    tmp_path: Path, tokens, db: Database, settings: Settings, shop_prometheus: str
) -> Iterator[tuple[str, str]]:
    if settings.database.url.startswith("postgresql"):
        pytest.skip("the browser run uses the SQLite store (the AppTest suite covers both)")
    binary = find_chromium()
    if binary is None:
        pytest.skip("Chromium is not installed: make system-deps installs it (Debian chromium)")
    bulk_history(db)
    folder = tmp_path / "policies"
    folder.mkdir()
    policy = {
        "name": "checkout-scale",
        "runbook": "scale-deployment",
        "match": {"service": ["checkout"]},
        "action": {"type": "scale_deployment", "namespace": "shop", "by": 1},
        "mode": "approval",
    }
    (folder / "shop.yaml").write_text(yaml.safe_dump({"policies": [policy]}))
    with FakeKube() as cluster:
        cluster.add_deployment("shop", "checkout", replicas=2)
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            auth={"webhook_token": WEBHOOK_TOKEN},
            automation={"policies_dir": str(folder), "kubernetes": {"host": cluster.url}},
            **shop_capacity(shop_prometheus),
        )
        CapacityJob(config, db, workers=1).run("cli", "test")
        with ApiServer(create_app(config, db)) as api:
            httpx.post(
                f"{api.url}/api/v1/webhooks/alertmanager",
                json=alertmanager_fixture("sample"),
                headers=bearer(WEBHOOK_TOKEN),
            ).raise_for_status()
            PolicyRunner(config, db).cycle()
            console_settings = config.model_copy(
                update={"console": config.console.model_copy(update={"api_url": api.url})}
            )
            with Console(console_settings, log=tmp_path / "console.log") as console:
                yield api.url, console.url


def test_every_page_in_a_real_browser_and_the_approval_flow(stack, tokens):
    api_url, console_url = stack
    timings: dict[str, float] = {}
    with Chromium(find_chromium() or "chromium") as browser:
        browser.navigate(console_url)
        browser.wait_for_text("API token")
        browser.type_into('input[type="password"]', tokens["operator"])
        browser.click_text("button", "Sign in")
        timings["sign in"] = browser.wait_for_text("Open incidents")
        for link, expected in PAGES:
            browser.click_text('[data-testid="stSidebarNav"] a span', link)
            timings[link] = browser.wait_for_text(expected)
            browser.screenshot(ARTIFACTS / f"{link.lower().replace(' ', '-')}.png")

        (waiting,) = httpx.get(
            f"{api_url}/api/v1/decisions",
            params={"status": "pending_approval"},
            headers=bearer(tokens["viewer"]),
        ).json()["data"]
        number = waiting["decision_id"]
        browser.click_text('[data-testid="stSidebarNav"] a span', "Approvals")
        browser.wait_for_text("Waiting for approval (1)")
        browser.type_into(
            f'input[aria-label="Comment on #{number} (required)"]', "p95 is 2 s, scale out"
        )
        browser.evaluate("document.activeElement.blur()")  # commit the text input
        browser.wait_for_text("Waiting for approval (1)")
        browser.click_text("button", f"Approve #{number}")
        timings["approve"] = browser.wait_for_text("Waiting for approval (0)")
        browser.wait_for_text(f"#{number} (")  # the confirmation names what was approved
        assert "approved by test-operator" in browser.evaluate("document.body.innerText")
        browser.screenshot(ARTIFACTS / "approved.png")

    decisions = httpx.get(f"{api_url}/api/v1/decisions", headers=bearer(tokens["viewer"])).json()
    # The CapacityRisk incident on checkout was refused by the cooldown; the alert's was approved.
    (decision,) = [d for d in decisions["data"] if d["status"] != "refused"]
    assert decision["reviewed_by"] == "test-operator"
    assert decision["status"] in ("approved", "executing", "succeeded")  # the API runs it next
    assert decision["review_comment"] == "p95 is 2 s, scale out"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=2))
    print("\nconsole page render times (s):", json.dumps(timings))
    assert all(
        (ARTIFACTS / f"{link.lower().replace(' ', '-')}.png").stat().st_size for link, _ in PAGES
    )
