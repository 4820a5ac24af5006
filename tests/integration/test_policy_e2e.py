"""The self-healing loop end to end, on SQLite and PostgreSQL: a real Alertmanager
notification (recorded payload) arrives at the webhook, a policy matches, and the decision is
planned against the fake Kubernetes API server through the official client. Dry run leaves
the cluster unchanged and shows the diff; approval waits for a human; auto scales, verifies
and rolls back on failed verification; the kill switch stops everything; two runners on one
store execute a decision once; a crashed execution goes to a human. Every step is audited."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from controlplane.api import create_app
from controlplane.config import Settings, load_settings
from controlplane.incidents import intake
from controlplane.policy import executor
from controlplane.policy.runner import PolicyRunner
from controlplane.policy.schema import Policy
from controlplane.storage import Database
from controlplane.storage.models import DecisionRow
from controlplane.testing.kube import FakeKube
from remediations import Kube
from tests.factories import WEBHOOK_TOKEN, alertmanager_fixture, bearer

pytestmark = pytest.mark.integration
SCALE_PATH = "/apis/apps/v1/namespaces/shop/deployments/checkout/scale"


@pytest.fixture
def cluster() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        fake.add_deployment("shop", "checkout", replicas=2)
        yield fake


@pytest.fixture
def config(settings: Settings, cluster: FakeKube) -> Settings:
    return load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        auth={"webhook_token": WEBHOOK_TOKEN},
        incidents={"group_by": "service"},
        automation={"kubernetes": {"host": cluster.url}, "interval_seconds": 0.1},
    )


@pytest.fixture
def api(config: Settings, db) -> Iterator[TestClient]:
    with TestClient(create_app(config, db)) as client:  # no policies_dir: no runner in the app
        yield client


def scale_policy(mode: str, **extra) -> Policy:
    return Policy.model_validate(
        {
            "name": f"checkout-{mode.replace('_', '-')}",
            "runbook": "scale-deployment",
            "match": {"service": ["checkout"], "alertname": ["HighLatency"]},
            "action": {"type": "scale_deployment", "deployment": "{labels[deployment]}", "by": 2},
            "mode": mode,
            "guardrails": {"blast_radius": {"max_replica_change": 4}, "namespaces": ["shop"]},
            "verify": {"promql": "up == 1", "timeout_seconds": 0.5},
            **extra,
        }
    )


def runner(config, db, policies, *, promql=lambda q: True, owner=None) -> PolicyRunner:
    return PolicyRunner(config, db, policies=policies, promql=promql, owner=owner)


def alert(api: TestClient) -> int:
    response = api.post(
        "/api/v1/webhooks/alertmanager",
        json=alertmanager_fixture("sample"),
        headers=bearer(WEBHOOK_TOKEN),
    )
    assert response.status_code == 200, response.text
    (incident,) = api.get("/api/v1/incidents", headers=bearer_viewer(api)).json()["data"]
    return incident["incident_id"]


def bearer_viewer(api: TestClient) -> dict[str, str]:
    return bearer(api.app.state.test_tokens["viewer"])


@pytest.fixture(autouse=True)
def _tokens_on_app(api, tokens):
    api.app.state.test_tokens = tokens


def replicas(cluster: FakeKube) -> int:
    return cluster.get("deployments", "shop", "checkout")["spec"]["replicas"]


def actions(api, tokens, decision_id: int) -> list[str]:
    audit = api.get(
        "/api/v1/audit",
        params={"target_type": "decision", "target_id": str(decision_id), "limit": 50},
        headers=bearer(tokens["viewer"]),
    ).json()["data"]
    return [a["action"] for a in reversed(audit)]


def test_dry_run_plans_with_the_cluster_and_changes_nothing(api, config, db, cluster, tokens):
    incident_id = alert(api)
    version = cluster.get("deployments", "shop", "checkout")["metadata"]["resourceVersion"]
    report = runner(config, db, [scale_policy("dry_run")]).cycle()
    assert len(report.decided) == 1
    assert report.executed == []
    (decision,) = api.get("/api/v1/decisions", headers=bearer(tokens["viewer"])).json()["data"]
    assert (decision["status"], decision["incident_id"]) == ("dry_run", incident_id)
    assert decision["plan"]["before"] == {"replicas": 2}
    assert decision["plan"]["after"] == {"replicas": 4}
    assert '+  "replicas": 4' in decision["plan"]["diff"]
    assert decision["plan"]["server_dry_run"]["spec"]["replicas"] == 4
    assert {c["guardrail"] for c in decision["checks"]} >= {
        "kill switch",
        "blast radius",
        "cooldown",
    }
    (dry,) = cluster.sent("PATCH")
    assert dry.path == SCALE_PATH
    assert dry.query["dryRun"] == ["All"]
    assert replicas(cluster) == 2
    assert cluster.get("deployments", "shop", "checkout")["metadata"]["resourceVersion"] == version
    detail = api.get(f"/api/v1/incidents/{incident_id}", headers=bearer(tokens["viewer"])).json()
    assert any(t["kind"] == "decision" for t in detail["timeline"])
    assert actions(api, tokens, decision["decision_id"]) == ["policy.decided"]


def test_approval_waits_for_a_human_then_scales_and_verifies(api, config, db, cluster, tokens):
    alert(api)
    loop = runner(config, db, [scale_policy("approval")])
    loop.cycle()
    loop.cycle()
    (decision,) = api.get("/api/v1/decisions", headers=bearer(tokens["viewer"])).json()["data"]
    assert decision["status"] == "pending_approval"
    assert replicas(cluster) == 2
    path = f"/api/v1/actions/{decision['decision_id']}/approve"
    assert (
        api.post(path, json={"comment": "go"}, headers=bearer(tokens["viewer"])).status_code == 403
    )
    missing = api.post(path, json={}, headers=bearer(tokens["operator"]))
    assert missing.status_code == 422
    assert "comment" in missing.text
    approved = api.post(
        path, json={"comment": "latency hurts, scale"}, headers=bearer(tokens["operator"])
    )
    assert approved.json()["status"] == "approved"
    assert approved.json()["reviewed_by"] == "test-operator"
    again = api.post(path, json={"comment": "twice"}, headers=bearer(tokens["operator"]))
    assert again.status_code == 409
    assert loop.cycle().executed == [decision["decision_id"]]
    assert replicas(cluster) == 4
    done = api.get(
        f"/api/v1/decisions/{decision['decision_id']}", headers=bearer(tokens["viewer"])
    ).json()
    assert done["status"] == "succeeded"
    assert done["outcome"]["verify"]["ok"] is True
    steps = ["decided", "approved", "execute", "verify", "succeeded"]
    assert [a.split(".")[1] for a in actions(api, tokens, decision["decision_id"])] == steps
    assert loop.cycle().executed == []  # nothing acts twice
    exported = api.get(
        "/api/v1/audit/export", params={"target_type": "decision"}, headers=bearer(tokens["viewer"])
    )
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    assert len(exported.text.strip().splitlines()) == 5


def test_auto_rolls_back_when_verification_fails(api, config, db, cluster, tokens):
    alert(api)
    report = runner(config, db, [scale_policy("auto")], promql=lambda q: False).cycle()
    assert len(report.executed) == 1
    (decision,) = api.get("/api/v1/decisions", headers=bearer(tokens["viewer"])).json()["data"]
    assert decision["status"] == "rolled_back"
    assert "PromQL did not hold within 0.5 s: up == 1" in decision["reason"]
    assert replicas(cluster) == 2
    writes = [r for r in cluster.sent("PATCH") if "dryRun" not in r.query]
    assert [w.body for w in writes] == [{"spec": {"replicas": 4}}, {"spec": {"replicas": 2}}]
    assert actions(api, tokens, decision["decision_id"])[-2:] == [
        "action.rollback",
        "action.rolled_back",
    ]


def test_kill_switch_stops_everything(api, config, db, cluster, tokens):
    paused = api.post(
        "/api/v1/automation/pause",
        json={"reason": "incident review"},
        headers=bearer(tokens["admin"]),
    )
    assert paused.json()["paused"] is True
    assert (
        api.post(
            "/api/v1/automation/pause", json={"reason": "x"}, headers=bearer(tokens["operator"])
        ).status_code
        == 403
    )
    alert(api)
    runner(config, db, [scale_policy("auto"), scale_policy("approval")]).cycle()
    rows = api.get("/api/v1/decisions", headers=bearer(tokens["viewer"])).json()["data"]
    assert {r["status"] for r in rows} == {"refused"}
    assert all(r["reason"] == "automation is paused" for r in rows)
    assert cluster.sent("PATCH") == []
    state = api.get("/api/v1/automation", headers=bearer(tokens["viewer"])).json()
    assert (state["paused"], state["changed_by"], state["reason"]) == (
        True,
        "test-admin",
        "incident review",
    )


def test_the_kill_switch_needs_a_reason_and_audits_it(api, tokens):
    admin = bearer(tokens["admin"])
    for body in (None, {}, {"reason": "   "}):
        refused = api.post("/api/v1/automation/pause", json=body, headers=admin)
        assert refused.status_code == 422, body
    named = api.post("/api/v1/automation/pause", json={"reason": " "}, headers=admin).json()
    assert [e["field"] for e in named["errors"]] == ["reason"]
    assert api.get("/api/v1/automation", headers=admin).json()["paused"] is False
    api.post("/api/v1/automation/pause", json={"reason": "change freeze"}, headers=admin)
    api.post("/api/v1/automation/resume", json={"reason": "freeze over"}, headers=admin)
    events = api.get("/api/v1/audit", params={"action": "automation."}, headers=admin).json()[
        "data"
    ]
    assert [(e["action"], e["details"]["reason"]) for e in events] == [
        ("automation.resumed", "freeze over"),
        ("automation.paused", "change freeze"),
    ]


def test_pausing_cancels_approved_work_and_blocks_approvals(api, config, db, cluster, tokens):
    alert(api)
    loop = runner(config, db, [scale_policy("approval")])
    loop.cycle()
    (decision,) = api.get("/api/v1/decisions", headers=bearer(tokens["viewer"])).json()["data"]
    path = f"/api/v1/actions/{decision['decision_id']}/approve"
    api.post(path, json={"comment": "ok"}, headers=bearer(tokens["operator"]))
    api.post("/api/v1/automation/pause", json={"reason": "drill"}, headers=bearer(tokens["admin"]))
    loop.cycle()
    done = api.get(
        f"/api/v1/decisions/{decision['decision_id']}", headers=bearer(tokens["viewer"])
    ).json()
    assert done["status"] == "cancelled"
    assert replicas(cluster) == 2


def test_two_runners_on_one_store_execute_once(api, config, db, cluster, tokens):
    """Two control planes (each its own engine and connection pool) on one store."""
    alert(api)
    policies = [scale_policy("auto")]
    other = Database(config.database.url)
    first, second = (
        runner(config, db, policies, owner="a"),
        runner(config, other, policies, owner="b"),
    )
    barrier = threading.Barrier(2)
    reports = []

    def run(loop: PolicyRunner) -> None:
        barrier.wait()
        reports.append(loop.cycle())

    threads = [threading.Thread(target=run, args=(loop,)) for loop in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.dispose()
    with db.read() as session:
        rows = session.query(DecisionRow).all()
    assert len(rows) == 1
    assert rows[0].status == "succeeded"
    assert sum(len(r.executed) for r in reports) == 1
    real_writes = [r for r in cluster.sent("PATCH") if "dryRun" not in r.query]
    assert len(real_writes) == 1


def test_a_crashed_execution_goes_to_a_human(api, config, db, cluster, tokens):
    alert(api)
    loop = runner(config, db, [scale_policy("approval")])
    loop.cycle()
    with db.write() as session:
        row = session.query(DecisionRow).one()
        row.status, row.lease_owner = "executing", "crashed-replica"
        row.lease_until = datetime.now(UTC) - timedelta(seconds=1)
    report = loop.cycle()
    assert report.executed == []
    assert len(report.handed_over) == 1
    done = api.get("/api/v1/decisions", headers=bearer(tokens["viewer"])).json()["data"][0]
    assert done["status"] == "needs_attention"
    assert "crashed-replica did not finish" in done["reason"]
    assert [r for r in cluster.sent("PATCH") if "dryRun" not in r.query] == []


def test_a_real_alertmanager_drives_a_policy_to_an_approved_scale_out(
    config, db, cluster, tokens, tmp_path
):
    """The whole loop with the real Alertmanager binary and the API's own policy loop."""
    from controlplane.domain.errors import ConfigError
    from controlplane.testing.servers import Alertmanager, ApiServer, find_alertmanager
    from tests.factories import posted_alert, wait_for

    try:
        find_alertmanager()
    except ConfigError as exc:
        pytest.skip(str(exc))
    folder = tmp_path / "policies"
    folder.mkdir()
    policy = scale_policy("approval").model_dump(mode="json", exclude={"verify"})
    policy["action"]["deployment"] = "{service}"
    policy["guardrails"]["namespaces"] = None
    (folder / "checkout.yaml").write_text(yaml.safe_dump({"policies": [policy]}))
    live = config.model_copy(
        update={"automation": config.automation.model_copy(update={"policies_dir": folder})}
    )
    viewer = bearer(tokens["viewer"])
    with (
        ApiServer(create_app(live, db)) as server,
        Alertmanager(
            tmp_path / "alertmanager",
            webhook_url=f"{server.url}/api/v1/webhooks/alertmanager",
            token=tokens["webhook"],
        ) as am,
    ):
        firing = posted_alert("HighLatency", "checkout", "checkout-1")
        firing["labels"]["namespace"] = "shop"
        am.post_alerts([firing])

        def pending():
            rows = httpx.get(f"{server.url}/api/v1/decisions", headers=viewer).json()["data"]
            return rows if rows and rows[0]["status"] == "pending_approval" else None

        (decision,) = wait_for(pending, what="a decision waiting for approval")
        assert replicas(cluster) == 2
        httpx.post(
            f"{server.url}/api/v1/actions/{decision['decision_id']}/approve",
            json={"comment": "go"},
            headers=bearer(tokens["operator"]),
        ).raise_for_status()

        def finished():
            row = httpx.get(
                f"{server.url}/api/v1/decisions/{decision['decision_id']}", headers=viewer
            ).json()
            return row if row["status"] not in ("approved", "executing") else None

        done = wait_for(finished, what="the approved decision to run")
    assert done["status"] == "succeeded", done["reason"]
    assert replicas(cluster) == 4


def test_a_plan_the_world_moved_away_from_never_runs(api, config, db, cluster, tokens):
    """Someone scaled checkout by hand between the approval and the execution: the approved
    plan (2 -> 4) is stale, and the executor changes nothing."""
    alert(api)
    loop = runner(config, db, [scale_policy("approval")])
    loop.cycle()
    (decision,) = api.get("/api/v1/decisions", headers=bearer(tokens["viewer"])).json()["data"]
    path = f"/api/v1/actions/{decision['decision_id']}/approve"
    api.post(path, json={"comment": "scale out"}, headers=bearer(tokens["operator"]))
    by_hand = Kube(host=cluster.url, timeout_seconds=5)
    by_hand.patch_scale("Deployment", "shop", "checkout", 7, dry_run=False)
    loop.cycle()
    done = api.get(
        f"/api/v1/decisions/{decision['decision_id']}", headers=bearer(tokens["viewer"])
    ).json()
    assert done["status"] == "stale"
    assert "the target changed since the plan" in done["reason"]
    assert "{'replicas': 2}" in done["reason"]
    assert replicas(cluster) == 7  # not touched
    assert "action.stale" in actions(api, tokens, decision["decision_id"])


def test_a_pending_approval_whose_incident_resolved_is_stale(api, config, db, cluster, tokens):
    incident_id = alert(api)
    loop = runner(config, db, [scale_policy("approval")])
    loop.cycle()
    (decision,) = api.get("/api/v1/decisions", headers=bearer(tokens["viewer"])).json()["data"]
    api.post(
        f"/api/v1/incidents/{incident_id}/resolve",
        json={"comment": "recovered by itself"},
        headers=bearer(tokens["operator"]),
    ).raise_for_status()
    path = f"/api/v1/actions/{decision['decision_id']}/approve"
    refused = api.post(path, json={"comment": "scale out"}, headers=bearer(tokens["operator"]))
    assert refused.status_code == 409
    assert "is stale: incident" in refused.json()["detail"]
    loop.cycle()
    done = api.get(
        f"/api/v1/decisions/{decision['decision_id']}", headers=bearer(tokens["viewer"])
    ).json()
    assert done["status"] == "stale"
    assert "resolved before anyone approved" in done["reason"]
    assert "decision.stale" in actions(api, tokens, decision["decision_id"])
    assert replicas(cluster) == 2


def test_a_pending_plan_the_world_moved_away_from_is_stale_and_can_be_planned_again(
    api, config, db, cluster, tokens
):
    """Someone scaled checkout by hand while the scale-out (2 -> 4) waited for approval: the
    plan is marked stale before anyone approves it; an operator asks for a new plan, which
    is made from a fresh read (7 -> 9) with every guardrail, needs a new approval, and a
    review of the old plan cannot approve the new one."""
    alert(api)
    now = [datetime.now(UTC)]
    policies = [scale_policy("approval")]
    loop = PolicyRunner(config, db, policies=policies, promql=lambda q: True, clock=lambda: now[0])
    loop.cycle()
    (decision,) = api.get("/api/v1/decisions", headers=bearer(tokens["viewer"])).json()["data"]
    number, read = decision["decision_id"], decision["plan_digest"]
    Kube(host=cluster.url, timeout_seconds=5).patch_scale(
        "Deployment", "shop", "checkout", 7, dry_run=False
    )
    now[0] += timedelta(seconds=31)  # the next check of waiting plans against the cluster
    loop.cycle()
    path = f"/api/v1/decisions/{number}"
    stale = api.get(path, headers=bearer(tokens["viewer"])).json()
    assert stale["status"] == "stale"
    assert stale["reason"] == (
        "the target changed since the plan (planned from {'replicas': 2}, now "
        "{'replicas': 7}); ask for a new plan"
    )
    approve = f"/api/v1/actions/{number}/approve"
    late = api.post(approve, json={"comment": "go"}, headers=bearer(tokens["operator"]))
    assert late.status_code == 409

    ask = {"comment": "someone scaled by hand; plan from 7"}
    viewer = api.post(f"{path}/replan", json=ask, headers=bearer(tokens["viewer"]))
    assert viewer.status_code == 403
    asked = api.post(f"{path}/replan", json=ask, headers=bearer(tokens["operator"]))
    assert asked.status_code == 200, asked.text
    assert asked.json()["status"] == "replanning"
    again = api.post(f"{path}/replan", json=ask, headers=bearer(tokens["operator"]))
    assert again.status_code == 409  # only a stale decision is planned again
    loop.cycle()
    fresh = api.get(path, headers=bearer(tokens["viewer"])).json()
    assert fresh["status"] == "pending_approval"
    assert (fresh["plan"]["before"], fresh["plan"]["after"]) == ({"replicas": 7}, {"replicas": 9})
    assert fresh["plan_digest"] != read
    assert fresh["reviewed_by"] is None

    old = api.post(
        approve, json={"comment": "go", "plan_digest": read}, headers=bearer(tokens["operator"])
    )
    assert old.status_code == 409
    assert "planned again since it was read" in old.json()["detail"]
    api.post(
        approve,
        json={"comment": "go", "plan_digest": fresh["plan_digest"]},
        headers=bearer(tokens["operator"]),
    ).raise_for_status()
    loop.cycle()
    assert api.get(path, headers=bearer(tokens["viewer"])).json()["status"] == "succeeded"
    assert replicas(cluster) == 9
    assert actions(api, tokens, number) == [
        "policy.decided",
        "decision.stale",
        "decision.replan_requested",
        "policy.replanned",
        "decision.approved",
        "action.execute",
        "action.verify",
        "action.succeeded",
    ]


def test_a_stale_decision_of_a_resolved_incident_is_not_planned_again(
    api, config, db, cluster, tokens
):
    incident_id = alert(api)
    loop = runner(config, db, [scale_policy("approval")])
    loop.cycle()
    (decision,) = api.get("/api/v1/decisions", headers=bearer(tokens["viewer"])).json()["data"]
    api.post(
        f"/api/v1/incidents/{incident_id}/resolve",
        json={"comment": "recovered"},
        headers=bearer(tokens["operator"]),
    ).raise_for_status()
    loop.cycle()
    asked = api.post(
        f"/api/v1/decisions/{decision['decision_id']}/replan",
        json={"comment": "try again"},
        headers=bearer(tokens["operator"]),
    )
    assert asked.status_code == 409
    assert "is resolved, there is nothing left to fix" in asked.json()["detail"]


def test_an_incident_whose_commit_landed_late_is_still_decided(
    api, config, db, cluster, tokens, monkeypatch
):
    """The intake stamps rows with its batch's start time; a commit that lands 10 s later
    (a slow disk, a lock) must still reach the policy loop, which had looked in the meantime."""
    loop = runner(config, db, [scale_policy("dry_run")])
    assert loop.cycle().decided == []

    class TenSecondsAgo(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return datetime.now(tz) - timedelta(seconds=10)

    monkeypatch.setattr(intake, "datetime", TenSecondsAgo)
    incident_id = alert(api)
    monkeypatch.undo()
    (decided,) = loop.cycle().decided
    (decision,) = api.get("/api/v1/decisions", headers=bearer(tokens["viewer"])).json()["data"]
    assert (decision["decision_id"], decision["incident_id"]) == (decided, incident_id)
    assert loop.cycle().decided == []  # the outbox entry was consumed: decided once


def test_a_running_execution_says_which_step_it_is_in(api, config, db, cluster, tokens):
    """While it runs, the decision's reason names the step (the console shows it), and each
    step's audit event carries the time the step ran, not the time the run ended."""
    alert(api)
    seen: list[str] = []

    def promql(query: str) -> bool:
        (row,) = api.get("/api/v1/decisions", headers=bearer(tokens["viewer"])).json()["data"]
        seen.append(f"{row['status']}: {row['reason']}")
        return True

    runner(config, db, [scale_policy("auto")], promql=promql).cycle()
    assert seen == ["executing: verifying: PromQL up == 1 (budget 0.5 s)"]
    (decision,) = api.get("/api/v1/decisions", headers=bearer(tokens["viewer"])).json()["data"]
    assert decision["status"] == "succeeded"
    events = api.get(
        "/api/v1/audit",
        params={"target_type": "decision", "target_id": str(decision["decision_id"])},
        headers=bearer(tokens["viewer"]),
    ).json()["data"]
    at = {e["action"]: e["at"] for e in events}
    executed = next(e for e in events if e["action"] == "action.execute")
    assert executed["at"] == executed["details"]["started_at"].replace("+00:00", "Z")
    assert at["action.execute"] <= at["action.verify"] <= at["action.succeeded"]


@pytest.mark.parametrize(
    ("healthy", "unready", "status", "why"),
    [
        (True, False, "succeeded", None),
        (False, False, "failed", "health check failed, PromQL does not hold"),
        (True, True, "failed", "has 0/2 replicas ready; nothing was switched"),
    ],
)
def test_failover_switches_only_to_a_healthy_standby(
    api, config, db, cluster, healthy, unready, status, why
):
    cluster.add_deployment("shop", "checkout-standby", replicas=2)
    cluster.add_service("shop", "checkout", {"app": "checkout"})
    health = 'sum(rate(http_errors_total{app="checkout-standby"}[5m])) < 1'
    written = health.replace("{", "{{").replace("}", "}}")  # parameters fill {placeholders}
    failover = Policy.model_validate(
        {
            "name": "checkout-failover",
            "match": {"service": ["checkout"]},
            "action": {
                "type": "failover",
                "namespace": "shop",
                "service": "checkout",
                "standby": "checkout-standby",
                "standby_selector": {"app": "checkout-standby"},
                "health_promql": written,
            },
            "mode": "auto",
            "verify": {"timeout_seconds": 2},
        }
    )
    asked: list[str] = []

    def promql(query: str) -> bool:
        asked.append(query)
        return healthy

    if unready:
        loop = runner(config, db, [failover], promql=promql)
        alert(api)
        loop.decider.run()  # planned while the standby was ready ...
        cluster.hold_unready("shop", "checkout-standby")  # ... which it no longer is
        loop.cycle()
    else:
        alert(api)
        runner(config, db, [failover], promql=promql).cycle()
    with db.read() as session:
        decision = session.query(DecisionRow).one()
    assert decision.plan, decision.reason
    assert "before switching: standby 2/2 ready; health: " + health in decision.plan["summary"]
    assert decision.status == status, decision.reason
    selector = cluster.get("services", "shop", "checkout")["spec"]["selector"]
    if why is None:
        assert selector == {"app": "checkout-standby"}
        assert asked[0] == health  # checked before the switch
    else:
        assert why in decision.reason
        assert selector == {"app": "checkout"}  # nothing was switched


def canary(cluster: FakeKube, verify: dict[str, float]) -> Policy:
    """checkout's route, all to checkout; a policy shifting it to the canary in 3 steps."""
    cluster.add_httproute("shop", "checkout", {"checkout": 100, "checkout-canary": 0})
    return Policy.model_validate(
        {
            "name": "checkout-canary",
            "match": {"service": ["checkout"]},
            "action": {"type": "shift_traffic", "namespace": "shop", "route": "checkout",
                       "to": "checkout-canary", "steps": [10, 50, 100]},
            "mode": "auto",
            "verify": {"promql": "canary_error_ratio < 0.01", **verify},
        }
    )  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "status", "weights", "why"),
    [
        ([True, True, True], "succeeded", {"checkout": 0, "checkout-canary": 100}, "verified"),
        ([True, True, False], "rolled_back", {"checkout": 50, "checkout-canary": 50},
         "rolled back to step 2 (checkout 50, checkout-canary 50)"),
        ([True, False], "rolled_back", {"checkout": 90, "checkout-canary": 10},
         "step 2 failed (PromQL did not hold"),
        ([False], "rolled_back", {"checkout": 100, "checkout-canary": 0},
         "step 1 failed (PromQL did not hold"),
    ],
)  # fmt: skip
def test_traffic_shifts_in_steps_and_a_failed_step_goes_back_to_the_last_good_one(
    api, config, db, cluster, answers, status, weights, why
):
    shift = canary(cluster, {"timeout_seconds": 0.2})
    replies = list(answers)  # one per check; the last one again while a check polls

    def promql(query: str) -> bool:
        return replies.pop(0) if len(replies) > 1 else replies[0]

    alert(api)
    runner(config, db, [shift], promql=promql).cycle()
    with db.read() as session:
        decision = session.query(DecisionRow).one()
    assert decision.status == status, decision.reason
    assert why in decision.reason
    backends = cluster.get("httproutes", "shop", "checkout")["spec"]["rules"][0]["backendRefs"]
    assert {b["name"]: b["weight"] for b in backends} == weights
    assert decision.plan["details"]["stages"] == [
        {"checkout": 90, "checkout-canary": 10},
        {"checkout": 50, "checkout-canary": 50},
        {"checkout": 0, "checkout-canary": 100},
    ]


def test_every_check_of_a_gradual_shift_waits_its_settle_time_first(
    api, config, db, cluster, monkeypatch
):
    """A step's condition already held before the step: checked at once, it would pass on
    the data from before the change. Each check waits `settle_seconds` first."""
    shift = canary(cluster, {"settle_seconds": 7})
    events: list[object] = []
    monkeypatch.setattr(executor, "time", SimpleNamespace(sleep=events.append))

    def promql(query: str) -> bool:
        backends = cluster.get("httproutes", "shop", "checkout")["spec"]["rules"][0]
        events.append({b["name"]: b["weight"] for b in backends["backendRefs"]}["checkout-canary"])
        return True

    alert(api)
    runner(config, db, [shift], promql=promql).cycle()
    assert events == [7, 10, 7, 50, 7, 100]  # settle, then the check, at every step
    with db.read() as session:
        decision = session.query(DecisionRow).one()
    assert decision.status == "succeeded", decision.reason


def test_an_istio_virtual_service_shifts_too_and_its_rules_hold(api, config, db, cluster):
    cluster.add_virtualservice("shop", "checkout", {"checkout-blue": 100, "checkout-green": 0})
    shift = Policy.model_validate(
        {
            "name": "checkout-green",
            "match": {"service": ["checkout"]},
            "action": {"type": "shift_traffic", "namespace": "shop", "kind": "VirtualService",
                       "route": "checkout", "to": "checkout-green", "steps": [25, 100]},
            "mode": "auto",
        }
    )  # fmt: skip
    alert(api)
    runner(config, db, [shift]).cycle()
    with db.read() as session:
        decision = session.query(DecisionRow).one()
    assert decision.status == "succeeded", decision.reason
    routes = cluster.get("virtualservices", "shop", "checkout")["spec"]["http"][0]["route"]
    assert {r["destination"]["host"]: r["weight"] for r in routes} == {
        "checkout-blue": 0,
        "checkout-green": 100,
    }
    with pytest.raises(Exception, match="weights must add up to 100"):
        cluster.create(
            "virtualservices",
            "shop",
            {
                "metadata": {"name": "bad", "namespace": "shop"},
                "spec": {"http": [{"route": [
                    {"destination": {"host": "a"}, "weight": 60},
                    {"destination": {"host": "b"}, "weight": 60},
                ]}]},
            },
        )  # fmt: skip
