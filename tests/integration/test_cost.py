"""Budget caps on automated scaling through the policy loop, the fake API server and the real
store: a scale-out past its budget is refused with its cost recorded; one whose budget asks
for a person waits for approval and counts against the budget; the API and the console's
Cost page show both."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import httpx
import pytest
from sqlalchemy import select

from controlplane.api import create_app
from controlplane.config import load_settings
from controlplane.policy.backtest import backtest
from controlplane.policy.runner import PolicyRunner
from controlplane.policy.schema import Policy
from controlplane.storage.models import DecisionRow, IncidentRow
from controlplane.testing.kube import FakeKube, serve_in_thread, stop_serving
from controlplane.testing.servers import ApiServer
from tests.factories import WEBHOOK_TOKEN, WEBHOOK_URL, alert, bearer, notification, signed_in

pytestmark = pytest.mark.integration


def scale_out(service: str) -> Policy:
    return Policy.model_validate(
        {
            "name": f"{service}-scale-out",
            "match": {"service": [service]},
            "action": {"type": "scale_deployment", "namespace": "shop", "deployment": service,
                       "by": 4},
            "mode": "auto",
        }
    )  # fmt: skip


def test_budgets_refuse_or_ask_and_the_cost_view_shows_it(
    settings, db, client, tokens, monkeypatch
):
    for service in ("checkout", "search"):
        body = notification([alert(f"c-{service}", service=service)], f"g-{service}")
        client.post(WEBHOOK_URL, json=body, headers=bearer(WEBHOOK_TOKEN)).raise_for_status()
    with FakeKube() as cluster:
        for service in ("checkout", "search"):
            cluster.add_deployment(
                "shop", service, replicas=2, requests={"cpu": "500m", "memory": "1Gi"}
            )
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            automation={"kubernetes": {"host": cluster.url}},
            cost={
                "currency": "EUR",
                "cpu_core_hour": 0.04,
                "memory_gib_hour": 0.005,
                "budgets": [
                    {"name": "checkout", "workload": "checkout", "per_hour": 0.05},
                    {"name": "search", "workload": "search", "per_month": 10, "over": "approval"},
                ],
            },
        )
        PolicyRunner(config, db, policies=[scale_out("checkout"), scale_out("search")]).cycle()
        replicas = cluster.get("deployments", "shop", "checkout")["spec"]["replicas"]
    assert replicas == 2  # refused: nothing changed
    with db.read() as session:
        decided = {d.policy: d for d in session.scalars(select(DecisionRow))}
    refused, asked = decided["checkout-scale-out"], decided["search-scale-out"]
    # 4 more replicas of 0.5 core and 1 GiB: 4 x (0.02 + 0.005) = 0.10 EUR an hour.
    assert refused.status == "refused"
    assert "adds 0.10 EUR/h to 0.00 added in the last hour (cap 0.05/h)" in refused.reason
    assert refused.plan["cost"]["per_hour"] == pytest.approx(0.10)
    assert (asked.status, asked.mode) == ("pending_approval", "approval")
    budget_check = next(c for c in asked.checks if c["guardrail"] == "budget search")
    assert budget_check["detail"].endswith("(cap 10/month); a person must approve")

    with ApiServer(create_app(config, db)) as api:
        view = httpx.get(f"{api.url}/api/v1/cost", headers=bearer(tokens["viewer"])).json()
        monkeypatch.setenv("AIOPS_CONSOLE__API_URL", api.url)
        app = signed_in(tokens["viewer"], "viewer", "test-viewer", "cost")
    budgets = {b["name"]: b for b in view["budgets"]}
    assert budgets["checkout"]["added_last_hour"] == 0  # a refused change adds nothing
    assert budgets["search"]["added_last_hour"] == pytest.approx(0.10)  # waiting counts
    assert {d["policy"] for d in view["decisions"]} == {"checkout-scale-out", "search-scale-out"}
    assert not app.exception
    metrics = {(m.label, m.value) for m in app.metric}
    assert ("Added in the last hour", "0.10 EUR") in metrics
    assert ("Added in the last hour", "0.00 EUR of 0.05") in metrics
    assert app.caption[0].value.startswith("Prices from the settings: 0.04 EUR a core-hour")
    assert len(app.get("vega_lite_chart")) == 2  # per decision, and added over time


def test_the_backtest_says_what_each_policy_would_have_spent(settings, db, client):
    """Replayed: checkout's scale-out at the 0.10 EUR/h its stored decision recorded, a
    relative scale of inventory at its replica-hour price, a restart at nothing; each from
    its moment to the window's end. Nothing prices an absolute scale of search: unpriced."""
    body = notification([alert("c-checkout", service="checkout")], "g-checkout")
    client.post(WEBHOOK_URL, json=body, headers=bearer(WEBHOOK_TOKEN)).raise_for_status()
    cost = {"currency": "EUR", "cpu_core_hour": 0.04, "memory_gib_hour": 0.005,
            "replica_hour": {"shop/inventory": 0.03}}  # fmt: skip
    with FakeKube() as cluster:
        cluster.add_deployment(
            "shop", "checkout", replicas=2, requests={"cpu": "500m", "memory": "1Gi"}
        )
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            automation={"kubernetes": {"host": cluster.url}},
            cost=cost,
        )
        PolicyRunner(config, db, policies=[scale_out("checkout")]).cycle()
    replayed = [
        scale_out("checkout"),
        _policy("inventory-too", {"type": "scale_deployment", "namespace": "shop",
                                  "deployment": "inventory", "by": 2}),
        _policy("search-to-six", {"type": "scale_deployment", "namespace": "shop",
                                  "deployment": "search", "replicas": 6}),
        _policy("restart", {"type": "rollout_restart", "namespace": "shop",
                            "deployment": "payments"}),
    ]  # fmt: skip
    with db.read() as session:
        opened = session.scalars(select(IncidentRow.opened_at)).one()
    until = opened + timedelta(hours=10)
    with db.read() as session:
        result = backtest(
            session, replayed, since=None, until=until, global_max_per_hour=100,
            cost=config.cost,
        )  # fmt: skip
    decided = {d["policy"]: d for d in result.decisions}
    hours = (until - datetime.fromisoformat(decided["restart"]["at"])).total_seconds() / 3600
    assert decided["checkout-scale-out"]["cost_per_hour"] == pytest.approx(0.10)  # recorded
    assert decided["inventory-too"]["cost_per_hour"] == pytest.approx(0.06)
    assert decided["inventory-too"]["spent"] == pytest.approx(0.06 * hours)
    assert decided["restart"]["cost_per_hour"] == 0
    assert decided["search-to-six"]["cost_per_hour"] is None
    spent = result.summary()["cost"]
    assert spent["currency"] == "EUR"
    assert spent["by_policy"]["checkout-scale-out"]["spent"] == pytest.approx(0.10 * hours)
    assert spent["by_policy"]["search-to-six"] == {"added_per_hour": 0, "spent": 0, "unpriced": 1}


def _policy(name: str, action: dict) -> Policy:
    return Policy.model_validate(
        {"name": name, "match": {"service": ["checkout"]}, "action": action, "mode": "auto"}
    )


#: What OpenCost's allocation API answers (aggregate=cluster, accumulate=true): one set.
ALLOCATION = {
    "code": 200,
    "status": "success",
    "data": [
        {
            "cluster-one": {
                "name": "cluster-one",
                "properties": {"cluster": "cluster-one"},
                "window": {"start": "2026-11-30T00:00:00Z", "end": "2026-12-07T00:00:00Z"},
                "minutes": 10080,
                "cpuCoreHours": 240.0,
                "cpuCost": 7.2,
                "ramByteHours": 240.0 * 2**30,
                "ramCost": 1.2,
                "gpuCost": 0,
                "pvCost": 0.4,
                "networkCost": 0.1,
                "totalCost": 8.9,
            }
        }
    ],
}


class _OpenCost(BaseHTTPRequestHandler):
    asked: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        return

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        body = json.dumps(ALLOCATION).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_prices_come_from_an_opencost_api_and_its_absence_is_shown(settings, db, client, tokens):
    """Scale plans priced at the cluster's own prices (7.20 for 240 core-hours: 0.03; 1.20
    for 240 GiB-hours: 0.005), asked for as OpenCost is asked; with OpenCost unreachable the
    settings' prices stay in use and the Cost view says why."""
    body = notification([alert("c-checkout", service="checkout")], "g-checkout")
    client.post(WEBHOOK_URL, json=body, headers=bearer(WEBHOOK_TOKEN)).raise_for_status()
    server, url = serve_in_thread(_OpenCost)
    try:
        with FakeKube() as cluster:
            cluster.add_deployment("shop", "checkout", replicas=2,
                                   requests={"cpu": "500m", "memory": "1Gi"})  # fmt: skip
            config = load_settings(
                database={"url": settings.database.url, "migrate_on_start": False},
                automation={"kubernetes": {"host": cluster.url}},
                cost={"currency": "EUR", "cpu_core_hour": 0.04, "opencost_url": url},
            )
            PolicyRunner(config, db, policies=[scale_out("checkout")]).cycle()
        with ApiServer(create_app(config, db)) as api:
            view = httpx.get(f"{api.url}/api/v1/cost", headers=bearer(tokens["viewer"])).json()
    finally:
        stop_serving(server)
    assert _OpenCost.asked[0] == ("/allocation/compute?window=7d&aggregate=cluster&accumulate=true")
    with db.read() as session:
        decision = session.scalars(select(DecisionRow)).one()
    # 4 replicas x (0.5 core x 0.03 + 1 GiB x 0.005) = 0.08 an hour.
    assert decision.plan["cost"]["per_hour"] == pytest.approx(0.08)
    assert view["prices"]["source"] == "opencost"
    assert view["prices"]["cpu_core_hour"] == pytest.approx(0.03)
    assert view["prices"]["memory_gib_hour"] == pytest.approx(0.005)

    gone = config.model_copy(
        update={"cost": config.cost.model_copy(update={"opencost_url": url})}
    )  # the server is stopped now
    with ApiServer(create_app(gone, db)) as api:
        view = httpx.get(f"{api.url}/api/v1/cost", headers=bearer(tokens["viewer"])).json()
    assert view["prices"]["source"] == "settings"
    assert view["prices"]["cpu_core_hour"] == 0.04
    assert view["prices"]["error"].startswith(f"OpenCost at {url}/allocation/compute")
