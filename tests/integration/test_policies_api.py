"""Policies, runbooks and the policy backtest through the API and the CLI; decisions and
runbooks shown with the incident."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from controlplane.api import create_app
from controlplane.cli import app as cli
from controlplane.config import Settings, load_settings
from controlplane.policy.runner import PolicyRunner
from tests.factories import WEBHOOK_TOKEN, alertmanager_fixture, bearer

pytestmark = pytest.mark.integration

POLICIES = {
    "policies": [
        {
            "name": "checkout-restart",
            "runbook": "rollout-restart",
            "match": {"service": ["checkout"]},
            "action": {"type": "rollout_restart", "deployment": "checkout"},
            "mode": "auto",
            "guardrails": {"max_actions_per_hour": 1, "cooldown_seconds": 0},
        },
        {
            "name": "checkout-notify",
            "match": {"service": ["checkout"], "severity": ["critical"]},
            "action": {"type": "notify", "url": "http://127.0.0.1:9/hook", "text": "{summary}"},
            "mode": "dry_run",
        },
    ]
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "shop.yaml").write_text(yaml.safe_dump(POLICIES))
    return tmp_path / "policies"


@pytest.fixture
def config(settings: Settings, folder: Path) -> Settings:
    return load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        auth={"webhook_token": WEBHOOK_TOKEN},
        incidents={"group_by": "service"},
        automation={"policies_dir": str(folder), "enabled": False},
    )


@pytest.fixture
def api(config: Settings, db) -> Iterator[TestClient]:
    with TestClient(create_app(config, db)) as client:
        yield client


def _notify(api: TestClient, minutes_ago: int, pod: str) -> None:
    payload = copy.deepcopy(alertmanager_fixture("sample"))
    start = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    for alert in payload["alerts"]:
        alert["labels"]["pod"] = pod
        alert["startsAt"] = start.isoformat()
        alert["fingerprint"] = pod
        alert["annotations"]["runbook_url"] = "https://runbooks.example/incident-response"
    payload["groupKey"] = f"{{}}:{{pod={pod!r}}}"
    response = api.post(
        "/api/v1/webhooks/alertmanager", json=payload, headers=bearer(WEBHOOK_TOKEN)
    )
    assert response.status_code == 200, response.text


def test_policies_and_runbooks_are_served(api, tokens, folder):
    body = api.get("/api/v1/policies", headers=bearer(tokens["viewer"])).json()
    assert body["errors"] == []
    assert [p["name"] for p in body["policies"]] == ["checkout-restart", "checkout-notify"]
    assert body["policies"][0]["guardrails"]["max_actions_per_hour"] == 1
    runbook = api.get("/api/v1/runbooks/rollout-restart", headers=bearer(tokens["viewer"])).json()
    assert runbook["title"] == "rollout restart"
    assert runbook["policies"] == ["checkout-restart"]
    assert runbook["markdown"].startswith("# Runbook: rollout restart")
    names = [
        r["name"] for r in api.get("/api/v1/runbooks", headers=bearer(tokens["viewer"])).json()
    ]
    assert {"scale-deployment", "failover", "capacity-risk"} <= set(names)
    assert api.get("/api/v1/runbooks/nope", headers=bearer(tokens["viewer"])).status_code == 404

    (folder / "broken.yaml").write_text("policies: [{name: x, action: {type: notify}}]")
    broken = api.get("/api/v1/policies", headers=bearer(tokens["viewer"])).json()
    assert broken["policies"] == []
    assert "policy 'x': action.url" in broken["errors"][0]


def test_incident_shows_its_decisions_and_runbooks(api, config, db, tokens):
    _notify(api, 5, "checkout-1")
    PolicyRunner(config, db).cycle()
    (incident,) = api.get("/api/v1/incidents", headers=bearer(tokens["viewer"])).json()["data"]
    detail = api.get(
        f"/api/v1/incidents/{incident['incident_id']}", headers=bearer(tokens["viewer"])
    ).json()
    by_policy = {d["policy"]: d for d in detail["decisions"]}
    assert by_policy["checkout-restart"]["status"] == "refused"  # no cluster configured
    assert "no Kubernetes cluster configured" in by_policy["checkout-restart"]["reason"]
    assert by_policy["checkout-notify"]["status"] == "dry_run"
    assert by_policy["checkout-notify"]["params"]["text"] == incident["title"]
    assert detail["runbooks"] == ["rollout-restart", "incident-response", "high-latency"]


def test_backtest_replays_history_through_the_policies(api, tokens, config, tmp_path):
    for minutes_ago, pod in ((50, "checkout-1"), (40, "checkout-2"), (30, "checkout-3")):
        _notify(api, minutes_ago, pod)
        api.post(
            f"/api/v1/incidents/{_newest(api, tokens)}/resolve",
            json={"comment": "done"},
            headers=bearer(tokens["operator"]),
        )
    result = api.post("/api/v1/policies/backtest", json={}, headers=bearer(tokens["viewer"])).json()
    summary = result["summary"]
    assert summary["incidents"] == 3
    assert summary["by_policy"]["checkout-restart"] == {"would run": 1, "refused": 2}
    assert summary["by_policy"]["checkout-notify"] == {"would only plan": 3}
    assert summary["refused_by_guardrail"] == {"policy rate": 2}
    assert summary["actions_per_hour"]["max"] == 1
    assert summary["cost"] == {
        "currency": "USD",
        "by_policy": {"checkout-restart": {"added_per_hour": 0, "spent": 0, "unpriced": 0}},
    }  # a restart adds no replicas
    refused = [d for d in result["decisions"] if d["status"] == "refused"]
    assert "1 of 1 actions of this policy in the last hour" in refused[0]["reason"]
    later = api.post(
        "/api/v1/policies/backtest",
        json={"since": datetime.now(UTC).isoformat()},
        headers=bearer(tokens["viewer"]),
    ).json()
    assert later["summary"]["incidents"] == 0

    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": config.database.url}}))
    out = CliRunner().invoke(
        cli,
        [
            "--config",
            str(path),
            "policy",
            "backtest",
            "--policies",
            str(config.automation.policies_dir),
        ],
    )
    assert out.exit_code == 0, out.output
    assert "3 incidents, 6 decisions" in out.output
    assert "refused by: policy rate 2" in out.output
    assert "checkout-restart" + " " * 24 + " would have spent 0.00 USD (+0.000 USD/h)" in out.output
    valid = CliRunner().invoke(
        cli, ["policy", "validate", "--policies", str(config.automation.policies_dir)]
    )
    assert "2 policies valid" in valid.output


def _newest(api: TestClient, tokens: dict[str, str]) -> int:
    data = api.get(
        "/api/v1/incidents", params={"limit": 1}, headers=bearer(tokens["viewer"])
    ).json()
    return data["data"][0]["incident_id"]
