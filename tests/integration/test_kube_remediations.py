"""Kubernetes remediations through the official client against the fake API server on
loopback: what the client sends (paths, query, content type), dry-run persisting nothing,
absolute and idempotent execution, verification, rollback, 409/404/422 as named errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import remediations
from controlplane.domain.errors import NotFoundError, PermanentError
from controlplane.testing.kube import REVISION, FakeKube
from remediations._kube import Kube, KubeConflictError, retry_on_conflict

pytestmark = pytest.mark.integration
NS = "shop"


def action_for(name: str, kube: Kube, **params):
    return remediations.build(remediations.parse({"type": name, **params}), lambda: kube)


@pytest.fixture
def cluster() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        fake.add_deployment(NS, "checkout", replicas=2, image="shop/checkout:1.4")
        yield fake


@pytest.fixture
def kube(cluster: FakeKube) -> Iterator[Kube]:
    connection = Kube(host=cluster.url, timeout_seconds=5)
    yield connection
    connection.close()


def test_scale_plans_with_server_dry_run_then_sets_absolute_replicas(cluster, kube):
    action = action_for("scale_deployment", kube, namespace=NS, deployment="checkout", by=3)
    version = cluster.get("deployments", NS, "checkout")["metadata"]["resourceVersion"]
    plan = action.plan()
    assert (plan.before, plan.after) == ({"replicas": 2}, {"replicas": 5})
    assert '-  "replicas": 2' in plan.diff()
    assert '+  "replicas": 5' in plan.diff()
    (dry,) = cluster.sent("PATCH")
    assert dry.path == "/apis/apps/v1/namespaces/shop/deployments/checkout/scale"
    assert dry.query["dryRun"] == ["All"]
    assert dry.query["fieldManager"] == ["aiops-control-plane"]
    assert dry.content_type == "application/merge-patch+json"
    assert dry.body == {"spec": {"replicas": 5}}
    assert plan.server_dry_run["spec"]["replicas"] == 5
    unchanged = cluster.get("deployments", NS, "checkout")
    assert unchanged["spec"]["replicas"] == 2
    assert unchanged["metadata"]["resourceVersion"] == version

    assert action.execute(plan, dry_run=True).ok
    assert cluster.get("deployments", NS, "checkout")["spec"]["replicas"] == 2
    assert action.execute(plan, dry_run=False).ok
    scaled = cluster.get("deployments", NS, "checkout")
    assert scaled["spec"]["replicas"] == 5
    assert scaled["metadata"]["resourceVersion"] != version
    action.execute(plan, dry_run=False)  # again: the same absolute state, no new version
    again = cluster.get("deployments", NS, "checkout")
    assert again["metadata"]["resourceVersion"] == scaled["metadata"]["resourceVersion"]
    assert "dryRun" not in cluster.sent("PATCH")[-1].query

    assert action.verify(plan, timeout_seconds=2).ok
    assert action.rollback(plan).ok
    assert cluster.get("deployments", NS, "checkout")["spec"]["replicas"] == 2


def test_scale_raises_the_hpa_minimum_instead_of_fighting_it(cluster, kube):
    cluster.add_hpa(NS, "checkout", target="checkout", low=2, high=5)
    action = action_for("scale_deployment", kube, namespace=NS, deployment="checkout", replicas=8)
    plan = action.plan()
    assert plan.details["hpa"] == "checkout"
    assert plan.after["hpa"] == {"minReplicas": 8, "maxReplicas": 8}
    assert cluster.sent("PATCH")[-1].path.endswith("/horizontalpodautoscalers/checkout")
    assert cluster.get("horizontalpodautoscalers", NS, "checkout")["spec"]["minReplicas"] == 2
    action.execute(plan, dry_run=False)
    assert cluster.get("horizontalpodautoscalers", NS, "checkout")["spec"]["minReplicas"] == 8
    assert cluster.get("deployments", NS, "checkout")["spec"]["replicas"] == 8  # HPA controller
    assert not any(r.path.endswith("/scale") and not r.query for r in cluster.sent("PATCH"))
    assert action.verify(plan, timeout_seconds=2).ok
    action.rollback(plan)
    hpa = cluster.get("horizontalpodautoscalers", NS, "checkout")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)


def test_scale_statefulset_through_its_scale_subresource_and_its_hpa(cluster, kube):
    cluster.add_statefulset(NS, "db", replicas=3)
    action = action_for("scale_statefulset", kube, namespace=NS, statefulset="db", by=2)
    plan = action.plan()
    assert (plan.before, plan.after) == ({"replicas": 3}, {"replicas": 5})
    (dry,) = cluster.sent("PATCH")
    assert dry.path == "/apis/apps/v1/namespaces/shop/statefulsets/db/scale"
    assert dry.query["dryRun"] == ["All"]
    action.execute(plan, dry_run=False)
    assert cluster.get("statefulsets", NS, "db")["spec"]["replicas"] == 5
    assert action.verify(plan, timeout_seconds=2).ok
    cluster.add_hpa(NS, "db", target="db", low=5, high=6, kind="StatefulSet")
    owned = action_for("scale_statefulset", kube, namespace=NS, statefulset="db", replicas=8)
    plan = owned.plan()
    assert plan.after["hpa"] == {"minReplicas": 8, "maxReplicas": 8}
    owned.execute(plan, dry_run=False)
    assert cluster.get("statefulsets", NS, "db")["spec"]["replicas"] == 8  # HPA controller
    assert cluster.get("deployments", NS, "checkout")["spec"]["replicas"] == 2  # not its target


def test_verification_fails_when_pods_do_not_become_ready(cluster, kube):
    cluster.unready.add((NS, "checkout"))
    action = action_for("scale_deployment", kube, namespace=NS, deployment="checkout", replicas=4)
    plan = action.plan()
    action.execute(plan, dry_run=False)
    outcome = action.verify(plan, timeout_seconds=0.6)
    assert not outcome.ok
    assert outcome.message.startswith("0/4 replicas ready")


def test_rollout_restart_stamps_the_template_and_makes_a_new_revision(cluster, kube):
    action = action_for("rollout_restart", kube, namespace=NS, deployment="checkout")
    plan = action.plan()
    assert plan.before == {"restartedAt": None}
    assert cluster.sent("PATCH")[-1].content_type == "application/strategic-merge-patch+json"
    assert len(cluster.objects_of("replicasets")) == 1  # dry run made no ReplicaSet
    action.execute(plan, dry_run=False)
    deployment = cluster.get("deployments", NS, "checkout")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/restartedAt"] == plan.after["restartedAt"]
    assert deployment["metadata"]["annotations"][REVISION] == "2"
    assert len(cluster.objects_of("replicasets")) == 2
    assert action.verify(plan, timeout_seconds=2).ok


def test_rollback_puts_back_the_previous_revision(cluster, kube):
    bad = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "checkout", "image": "shop/checkout:1.5"}]}
            }
        }
    }
    kube.patch_deployment(NS, "checkout", bad, dry_run=False)  # strategic merge by name
    assert cluster.get("deployments", NS, "checkout")["metadata"]["annotations"][REVISION] == "2"
    action = action_for("rollback_deployment", kube, namespace=NS, deployment="checkout")
    plan = action.plan()
    assert plan.details == {"from_revision": 2, "to_revision": 1}
    assert "shop/checkout:1.5" in plan.diff()
    assert "shop/checkout:1.4" in plan.diff()
    assert cluster.sent("PATCH")[-1].content_type == "application/json-patch+json"
    action.execute(plan, dry_run=False)
    restored = cluster.get("deployments", NS, "checkout")
    assert restored["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/checkout:1.4"
    assert restored["metadata"]["annotations"][REVISION] == "3"
    action.rollback(plan)
    undone = cluster.get("deployments", NS, "checkout")
    assert undone["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/checkout:1.5"


def test_rollback_without_history_is_refused(kube):
    with pytest.raises(PermanentError, match="no revision before 1"):
        action_for("rollback_deployment", kube, namespace=NS, deployment="checkout").plan()


def test_failover_switches_the_service_selector_and_back(cluster, kube):
    cluster.add_deployment(NS, "checkout-standby", replicas=2)
    cluster.add_service(NS, "checkout", {"app": "checkout", "tier": "primary"})
    action = action_for(
        "failover",
        kube,
        namespace=NS,
        service="checkout",
        standby="checkout-standby",
        standby_selector={"app": "checkout-standby"},
    )
    plan = action.plan()
    assert cluster.get("services", NS, "checkout")["spec"]["selector"]["tier"] == "primary"
    action.execute(plan, dry_run=False)
    write = cluster.sent("PATCH")[-1]
    assert write.content_type == "application/json-patch+json"
    assert write.body[0]["op"] == "test"  # guarded by the resourceVersion that was read
    assert cluster.get("services", NS, "checkout")["spec"]["selector"] == {
        "app": "checkout-standby"
    }
    assert action.verify(plan, timeout_seconds=2).ok
    action.rollback(plan)
    assert cluster.get("services", NS, "checkout")["spec"]["selector"] == {
        "app": "checkout",
        "tier": "primary",
    }


def test_errors_are_named_and_conflicts_retried(cluster, kube):
    with pytest.raises(NotFoundError, match='404 deployments "nope" not found'):
        kube.deployment(NS, "nope")
    with pytest.raises(PermanentError, match=r"422 spec\.replicas: Invalid value: -1"):
        kube.patch_deployment(NS, "checkout", {"spec": {"replicas": -1}}, dry_run=True)
    stale = {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 3}}
    with pytest.raises(KubeConflictError, match="409 Operation cannot be fulfilled"):
        kube.patch_deployment(NS, "checkout", stale, dry_run=False, patch_type="merge")

    calls = []

    def attempt() -> dict:
        calls.append(1)
        version = (
            "1"
            if len(calls) == 1
            else kube.deployment(NS, "checkout")["metadata"]["resourceVersion"]
        )
        body = {"metadata": {"resourceVersion": version}, "spec": {"replicas": 3}}
        return kube.patch_deployment(NS, "checkout", body, dry_run=False, patch_type="merge")

    assert retry_on_conflict(attempt)["spec"]["replicas"] == 3
    assert len(calls) == 2
