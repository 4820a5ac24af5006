"""Every console page through AppTest against the real API: rendered with data, empty states,
API errors, role restrictions, and the actions calling the API with the right payloads."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from controlplane.api import create_app
from controlplane.capacity.job import CapacityJob
from controlplane.config import Settings, load_settings
from controlplane.demo import COST
from controlplane.policy.runner import PolicyRunner
from controlplane.storage.models import EvidenceRow, SignalStateRow
from controlplane.testing.servers import ApiServer, free_port
from tests.factories import WEBHOOK_TOKEN, alertmanager_fixture, bearer, shop_capacity, signed_in

pytestmark = pytest.mark.integration
POLICIES = {
    "policies": [
        {
            "name": "checkout-notify",
            "runbook": "notify",
            "match": {"service": ["checkout"]},
            "action": {"type": "notify", "url": "http://127.0.0.1:9/hook", "text": "{summary}"},
            "mode": "dry_run",
        }
    ]
}


@dataclass(frozen=True)
class Console:
    url: str
    config: Settings


@pytest.fixture
def console(
    settings, db, tokens, shop_prometheus, tmp_path: Path, monkeypatch
) -> Iterator[Console]:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "shop.yaml").write_text(yaml.safe_dump(POLICIES))
    config = load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        auth={"webhook_token": WEBHOOK_TOKEN},
        automation={"policies_dir": str(folder), "enabled": False},
        cost=COST,
        **shop_capacity(shop_prometheus),
    )
    with ApiServer(create_app(config, db)) as server:
        monkeypatch.setenv("AIOPS_CONSOLE__API_URL", server.url)
        yield Console(server.url, config)


@pytest.fixture
def seeded(console: Console, db, tokens) -> str:
    """An alert's incident with anomaly evidence and a policy decision, and a capacity report
    of the demo shop (two signals at risk: two CapacityRisk incidents)."""
    httpx.post(
        f"{console.url}/api/v1/webhooks/alertmanager",
        json=alertmanager_fixture("sample"),
        headers=bearer(WEBHOOK_TOKEN),
    ).raise_for_status()
    (incident,) = httpx.get(
        f"{console.url}/api/v1/incidents", headers=bearer(tokens["viewer"])
    ).json()["data"]
    onset = datetime.now(UTC) - timedelta(minutes=10)
    points = [
        {
            "at": (onset + timedelta(minutes=m - 30)).isoformat(),
            "value": 0.2 + (0.5 if m >= 30 else 0),
            "score": 0.9 if m >= 30 else 0.05,
        }
        for m in range(40)
    ]
    with db.write() as session:
        session.add(
            EvidenceRow(
                incident_id=incident["incident_id"],
                signal="checkout-latency",
                service="checkout",
                onset_at=onset,
                peak_score=0.93,
                data={
                    "signal": "checkout-latency",
                    "query": 'latency{service="checkout"}',
                    "detector": "ensemble",
                    "threshold": 0.5,
                    "points": points,
                },
            )
        )
    CapacityJob(console.config, db, workers=1).run("cli", "test")
    PolicyRunner(console.config, db).cycle()
    return console.url


def test_overview_with_data_and_without(seeded, tokens):
    app = signed_in(tokens["viewer"], "viewer", "test-viewer", "overview")
    assert not app.exception
    assert app.metric[0].label == "Open incidents"
    assert app.metric[0].value == "3"  # the alert, and CapacityRisk on checkout and inventory
    assert app.success[0].value == "Prometheus: reachable."
    assert any("Latest capacity report #1" in c.value for c in app.caption)
    # What needs a human leads: the open incidents, most severe first, each a link.
    assert app.subheader[0].value == "Needs a human (3 open, not acknowledged)"
    links = app.get("page_link")
    incidents = httpx.get(
        f"{seeded}/api/v1/incidents",
        params={"order": "urgent", "status": "open"},
        headers=bearer(tokens["viewer"]),
    ).json()["data"]
    assert [link.proto.label for link in links[: len(incidents)]] == [
        f"#{i['incident_id']} {i['title']}" for i in incidents
    ]
    assert any(":red-badge[critical]" in c.value and "ago (" in c.value for c in app.caption)


def test_overview_empty_and_api_down(console, tokens, monkeypatch):
    app = signed_in(tokens["viewer"], "viewer", "test-viewer", "overview")
    assert app.info[0].value == "No open incidents."
    monkeypatch.setenv("AIOPS_CONSOLE__API_URL", f"http://127.0.0.1:{free_port()}")
    down = signed_in(tokens["viewer"], "viewer", "test-viewer", "overview")
    assert "cannot be reached" in down.error[0].value


def test_incident_detail_shows_evidence_hints_decisions_and_runbooks(seeded, tokens):
    app = signed_in(tokens["viewer"], "viewer", "test-viewer", "incidents")
    incidents = httpx.get(
        f"{seeded}/api/v1/incidents",
        params={"service": "checkout"},
        headers=bearer(tokens["viewer"]),
    ).json()["data"]
    alerted = next(i["incident_id"] for i in incidents if i["source"] == "alertmanager")
    app.button(key=f"open-incident-{alerted}").click().run()
    assert not app.exception
    headings = [m.value for m in app.markdown]
    for heading in (
        "#### Evidence",
        "#### Root-cause hints",
        "#### Policy decisions",
        "#### Runbooks",
    ):
        assert heading in headings
    assert app.code[0].value == 'latency{service="checkout"}'
    (hint,) = [m.value for m in app.markdown if m.value.startswith("1. **checkout**")]
    assert re.search(r"· score [01]\.\d\d  \n", hint), hint  # the score, never None
    assert "no anomalous dependency of its own" in hint  # the whole reason
    (link,) = app.get("link_button")
    assert "/graph?g0.expr=latency%7Bservice%3D%22checkout%22%7D" in link.proto.url
    detail = httpx.get(
        f"{seeded}/api/v1/incidents/{alerted}", headers=bearer(tokens["viewer"])
    ).json()
    anomaly = next(e for e in detail["evidence"] if e["kind"] == "anomaly")
    assert anomaly["graph_url"] == link.proto.url
    assert any(e.label == "Runbook: notify" for e in app.expander)


def test_actions_and_audit(seeded, tokens):
    app = signed_in(tokens["viewer"], "viewer", "test-viewer", "actions")
    assert not app.exception
    assert app.info[0].value == "No action has run yet."
    assert "audit event(s) match" in app.caption[0].value
    app.text_input(key="audit_action").input("policy.").run()
    assert app.caption[0].value.startswith("2 audit event(s) match")  # the alert's, the risk's
    details = list(app.dataframe[-1].value["details"])
    assert all(" · " in d for d in details)  # fields, not a Python dict repr
    assert not any("{'" in d or "None" in d for d in details)
    app.button(key="prepare_export").click().run()
    assert not app.exception
    assert '"action": "policy.decided"' in app.session_state["audit_export"]
    app.text_input(key="audit_action").input("nothing.").run()
    assert app.info[-1].value == "No audit events match these filters."


def test_capacity_page(seeded, tokens):
    app = signed_in(tokens["viewer"], "viewer", "test-viewer", "capacity")
    assert not app.exception
    assert app.button(key="generate").disabled
    assert app.subheader[1].value.startswith("Report #1: 2 of 4 at risk")
    labels = [e.label for e in app.expander]
    assert "checkout / checkout-cpu: limit 4.1 cores (at risk)" in labels
    assert "search / search-memory: limit 16 GiB" in labels
    assert app.metric[2].label == "P(cross in lead)"
    # Each forecast shows its own accuracy: its error over seasonal naive's, and its bands'.
    assert app.metric[3].label == "Model (error / naive's)"
    assert app.metric[3].value.endswith("x)")
    accuracy = [c.value for c in app.caption if c.value.startswith("Accuracy: backtest error ")]
    assert len(accuracy) == 4  # every signal's
    assert all("seasonal naive's" in a and "bands held" in a for a in accuracy)
    # payments' replica recommendation, priced (0.025 EUR a replica-hour, 3 running now).
    (cost,) = [c.value for c in app.caption if c.value.startswith("Cost: ")]
    assert cost.startswith("Cost: 0.08 EUR/h now → ")  # 0.075, rounded
    assert cost.endswith(" EUR a month).")
    (chart, *_) = app.get("vega_lite_chart")
    spec = json.loads(chart.proto.spec)
    text = json.dumps(spec)
    assert '"type": "utc"' in text  # one time zone, stated on the axis
    assert '"format": "%b %d"' in text  # dates, not "12 PM" ten times
    assert '"zero": false' in text  # the y-axis fitted to the data
    for series in ("history", "forecast", "80% band", "95% band", "limit"):
        assert f'"{series}"' in text  # in the legend
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks.count("rule") == 2  # the limit, and the "now" and crossing-date lines
    assert "text" in marks  # their labels
    operator = signed_in(tokens["operator"], "operator", "test-operator", "capacity")
    operator.button(key="generate").click().run()
    assert not operator.exception
    deadline = time.monotonic() + 60
    while operator.session_state["report_choice"] != 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        operator.run()  # the page follows the report it asked for, without navigating
    assert operator.subheader[1].value.startswith("Report #2: ")


def test_capacity_page_empty(console, tokens):
    app = signed_in(tokens["viewer"], "viewer", "test-viewer", "capacity")
    assert app.info[0].value.startswith("No capacity report yet")


def test_policies_runbooks_and_backtest(seeded, tokens):
    app = signed_in(tokens["viewer"], "viewer", "test-viewer", "policies")
    assert not app.exception
    assert list(app.dataframe[0].value["policy"]) == ["checkout-notify"]
    (policy,) = [c.value for c in app.code if c.language == "yaml"]
    assert policy.startswith("name: checkout-notify\n")  # YAML, as it was written
    app.selectbox(key="runbook_choice").set_value("failover").run()
    assert any("Runbook: fail over to the standby" in m.value for m in app.markdown)
    app.button[0].click().run()  # the backtest form's submit button
    assert not app.exception
    # 3 incidents; the alert's and checkout's CapacityRisk match the notify policy (dry run).
    assert [m.value for m in app.metric] == ["3", "2", "0"]


def test_overview_does_not_call_prometheus_healthy_above_failing_signals(seeded, db, tokens):
    with db.write() as session:
        session.add(
            SignalStateRow(
                signal="checkout-latency",
                service="checkout",
                query="nope{",
                detector="ensemble",
                status="no_data",
                last_error="Prometheus refused query 'nope{': parse error",
            )
        )
    app = signed_in(tokens["viewer"], "viewer", "test-viewer", "overview")
    assert not app.exception
    assert not [s for s in app.success if "Prometheus" in s.value]
    (warning,) = [w.value for w in app.warning if "Prometheus" in w.value]
    assert warning.startswith("Prometheus: reachable, but 1 of 1 signal(s) fail: checkout-latency")
