"""The contract every registered remediation action keeps, run over `remediations.REGISTRY`
against real parts: the fake API server through the official client, the real Redis on this
machine, and a loopback HTTP receiver. Registering an action is what gets it tested here;
an action without a scenario below fails `test_every_action_has_a_scenario`.

For each action: `plan` only reads; a dry run writes nothing (same resourceVersions, same
cache, nothing posted); executing twice leaves the state executing once left; `rollback`
restores the `before` state (an irreversible action says so and changes nothing); `verify`
returns within its timeout when the post-condition cannot hold; bad params are refused with
an error naming the field and the value; the target is known from the params alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import pytest
import redis

import remediations
from controlplane.domain.errors import InvalidInputError
from controlplane.testing.kube import FakeKube
from remediations import REGISTRY, Action, Kube, TargetRef
from tests.factories import Receiver, render_manifests

pytestmark = pytest.mark.integration
NS = "shop"
REDIS_URL = "redis://127.0.0.1:6379/13"
VERIFY_TIMEOUT = 0.5
POLL = 0.5  # remediations.base.wait_for's interval
MAX_READS_PER_POLL = 2  # failover reads the Service and the standby Deployment


@dataclass
class Env:
    cluster: FakeKube
    kube: Kube
    cache: redis.Redis
    receiver: Receiver
    files: Path


@dataclass
class Scenario:
    params: dict[str, Any]
    observe: Callable[[], Any]  # the state the action changes, comparable with ==
    spoil: Callable[[], None] | None = None  # makes verification impossible, if it can be


def _workload(env: Env, plural: str, name: str) -> Callable[[], Any]:
    def observe() -> Any:
        obj = env.cluster.get(plural, NS, name)
        hpas = [h["spec"] for h in env.cluster.objects_of("horizontalpodautoscalers")]
        return obj["spec"], hpas

    return observe


def _scale_deployment(env: Env) -> Scenario:
    return Scenario(
        {"type": "scale_deployment", "namespace": NS, "deployment": "checkout", "by": 2},
        _workload(env, "deployments", "checkout"),
        lambda: env.cluster.hold_unready(NS, "checkout"),
    )


def _scale_statefulset(env: Env) -> Scenario:
    return Scenario(
        {"type": "scale_statefulset", "namespace": NS, "statefulset": "db", "replicas": 7},
        _workload(env, "statefulsets", "db"),
        lambda: env.cluster.hold_unready(NS, "db"),
    )


def _rollout_restart(env: Env) -> Scenario:
    return Scenario(
        {"type": "rollout_restart", "namespace": NS, "deployment": "checkout"},
        _workload(env, "deployments", "checkout"),
        lambda: env.cluster.hold_unready(NS, "checkout"),
    )


def _rollback_deployment(env: Env) -> Scenario:
    env.cluster.roll_out(NS, "checkout", "shop/checkout:1.5")
    return Scenario(
        {"type": "rollback_deployment", "namespace": NS, "deployment": "checkout"},
        _workload(env, "deployments", "checkout"),
        lambda: env.cluster.hold_unready(NS, "checkout"),
    )


def _failover(env: Env) -> Scenario:
    env.cluster.add_deployment(NS, "checkout-standby", replicas=2)
    env.cluster.add_service(NS, "checkout", {"app": "checkout", "tier": "web"})
    return Scenario(
        {
            "type": "failover",
            "namespace": NS,
            "service": "checkout",
            "standby": "checkout-standby",
            "standby_selector": {"app": "checkout-standby"},
        },
        lambda: env.cluster.get("services", NS, "checkout")["spec"]["selector"],
        lambda: env.cluster.hold_unready(NS, "checkout-standby"),
    )


def _shift_traffic(env: Env) -> Scenario:
    env.cluster.add_httproute(NS, "checkout", {"checkout": 100, "checkout-canary": 0})
    return Scenario(
        {"type": "shift_traffic", "namespace": NS, "route": "checkout", "to": "checkout-canary"},
        lambda: env.cluster.get("httproutes", NS, "checkout")["spec"],
    )


def _limit_client(env: Env) -> Scenario:
    env.cluster.add_backendtrafficpolicy(NS, "storefront-limits", "checkout")
    return Scenario(
        {"type": "limit_client", "namespace": NS, "policy": "storefront-limits",
         "client": "203.0.113.7"},
        lambda: env.cluster.get("backendtrafficpolicies", NS, "storefront-limits")["spec"],
    )  # fmt: skip


def _warm_cache(env: Env) -> Scenario:
    keys = env.files / "keys.txt"
    keys.write_text("".join(f"product:{i} v{i}\n" for i in range(20)))

    def observe() -> Any:
        return {k: env.cache.get(k) for k in sorted(env.cache.keys("product:*"))}

    return Scenario(
        {"type": "warm_cache", "target": "redis", "url": REDIS_URL, "keys_file": str(keys)},
        observe,
        env.cache.flushdb,
    )


def _notify(env: Env) -> Scenario:
    def observe() -> Any:
        # What the channel shows: each distinct message once (a retry carries the same key).
        return {(p.headers.get("Idempotency-Key"), str(p.body)) for p in env.receiver.posts}

    return Scenario(
        {"type": "notify", "url": f"{env.receiver.url}/ok", "text": "checkout scaled"}, observe
    )


SCENARIOS: dict[str, Callable[[Env], Scenario]] = {
    "scale_deployment": _scale_deployment,
    "scale_statefulset": _scale_statefulset,
    "rollout_restart": _rollout_restart,
    "rollback_deployment": _rollback_deployment,
    "failover": _failover,
    "shift_traffic": _shift_traffic,
    "limit_client": _limit_client,
    "warm_cache": _warm_cache,
    "notify": _notify,
}


@contextmanager
def environment(files: Path) -> Iterator[Env]:
    """A fresh cluster (checkout Deployment, db StatefulSet), Redis database and receiver."""
    cache = redis.Redis.from_url(REDIS_URL)
    try:
        cache.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    cache.flushdb()
    with FakeKube() as cluster, Receiver() as receiver:
        cluster.add_deployment(NS, "checkout", replicas=2, image="shop/checkout:1.4")
        cluster.add_statefulset(NS, "db", replicas=3)
        kube = Kube(host=cluster.url, timeout_seconds=5)
        yield Env(cluster, kube, cache, receiver, files)
        kube.close()
    cache.flushdb()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with environment(tmp_path) as made:
        yield made


def versions(cluster: FakeKube) -> dict[Any, str]:
    """Every object's resourceVersion: unchanged means nothing was written."""
    return {key: obj["metadata"]["resourceVersion"] for key, obj in cluster.objects.items()}


def prepared(name: str, env: Env) -> tuple[Action[Any], Scenario]:
    scenario = SCENARIOS[name](env)
    params = remediations.parse(scenario.params)
    return remediations.build(params, lambda: env.kube), scenario


ACTIONS = sorted(REGISTRY)


def test_every_action_has_a_scenario():
    assert sorted(SCENARIOS) == ACTIONS


@pytest.mark.parametrize("name", ACTIONS)
def test_declares_what_the_system_needs(name):
    cls = REGISTRY[name]
    assert cls.name == name
    assert get_args(cls.Params.model_fields["type"].annotation) == (name,)
    assert cls.Params.model_config.get("extra") == "forbid"
    assert name.replace("_", "-") in __import__("runbooks").names(), "every action has a runbook"


@pytest.mark.parametrize("name", ACTIONS)
def test_plan_only_reads_and_a_dry_run_writes_nothing(name, env):
    action, scenario = prepared(name, env)
    state, written = scenario.observe(), versions(env.cluster)
    plan = action.plan()
    assert plan.action == name
    assert plan.target == action.target(action.params).as_dict()
    assert all(r.query.get("dryRun") == ["All"] for r in env.cluster.sent())
    assert (scenario.observe(), versions(env.cluster)) == (state, written)
    assert action.execute(plan, dry_run=True).ok
    assert (scenario.observe(), versions(env.cluster)) == (state, written)
    assert env.receiver.posts == []


@pytest.mark.parametrize("name", ACTIONS)
def test_executing_twice_equals_executing_once(name, env):
    action, scenario = prepared(name, env)
    before = scenario.observe()
    plan = action.plan()
    assert action.execute(plan, dry_run=False).ok
    once, written = scenario.observe(), versions(env.cluster)
    assert once != before, "executing changed nothing the scenario observes"
    assert action.execute(plan, dry_run=False).ok
    assert (scenario.observe(), versions(env.cluster)) == (once, written)
    assert action.verify(plan, timeout_seconds=5).ok


@pytest.mark.parametrize("name", ACTIONS)
def test_rollback_restores_the_before_state(name, env):
    action, scenario = prepared(name, env)
    before = scenario.observe()
    plan = action.plan()
    action.execute(plan, dry_run=False)
    after = scenario.observe()
    assert action.rollback(plan).ok
    assert scenario.observe() == (before if action.reversible else after)


@pytest.mark.parametrize("name", ACTIONS)
def test_verify_is_bounded_in_time(name, env):
    action, scenario = prepared(name, env)
    plan = action.plan()
    action.execute(plan, dry_run=False)
    if scenario.spoil is not None:
        scenario.spoil()
    reads = len(env.cluster.requests)
    outcome = action.verify(plan, timeout_seconds=VERIFY_TIMEOUT)
    # Bounded: it gave up, having polled at most once per interval (and a last time).
    assert len(env.cluster.requests) - reads <= MAX_READS_PER_POLL * (VERIFY_TIMEOUT / POLL + 2)
    assert outcome.ok is (scenario.spoil is None)
    assert outcome.message


@pytest.mark.parametrize("name", ACTIONS)
def test_bad_params_are_refused_naming_the_field_and_the_value(name, env):
    scenario = SCENARIOS[name](env)
    with pytest.raises(InvalidInputError, match=r"bogus = 1"):
        remediations.parse({**scenario.params, "bogus": 1})
    for field in REGISTRY[name].Params.model_fields:
        if field == "type":
            continue
        with pytest.raises(InvalidInputError) as refused:
            remediations.parse({**scenario.params, field: {"not": ["valid"]}})
        assert field in str(refused.value)
        assert "valid" in str(refused.value)


@pytest.mark.parametrize("name", ACTIONS)
def test_the_target_is_known_from_the_params_alone(name, env):
    scenario = SCENARIOS[name](env)
    target = REGISTRY[name].target(remediations.parse(scenario.params))
    assert isinstance(target, TargetRef)
    assert target.kind
    assert target.name
    assert "?" not in target.key
    assert "/ok" not in target.key, "a webhook URL is a secret: the target shows a digest"


def _lifecycle(name: str, env: Env, *, hpa: bool = False) -> None:
    """Everything an action can do: plan, dry run, execute, verify, roll back."""
    if hpa:
        env.cluster.add_hpa(NS, "checkout-hpa", "checkout", 2, 6)
        env.cluster.add_hpa(NS, "db-hpa", "db", 3, 9, kind="StatefulSet")
    action, _ = prepared(name, env)
    plan = action.plan()
    action.execute(plan, dry_run=True)
    action.execute(plan, dry_run=False)
    action.verify(plan, timeout_seconds=1)
    action.rollback(plan)


def used_permissions(files: Path) -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of every request the registered actions send, run through
    their whole lifecycle (scaling also with an HorizontalPodAutoscaler in charge)."""
    used = set()
    for name in ACTIONS:
        for hpa in (False, True):
            with environment(files) as env:
                _lifecycle(name, env, hpa=hpa)
                used |= {permission(r.method, r.path) for r in env.cluster.requests}
    return used


def permission(method: str, path: str) -> tuple[str, str, str]:
    """What RBAC calls a request: its group, resource (with subresource) and verb."""
    parts = path.strip("/").split("/")
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[(2 if parts[0] == "api" else 3) :]
    if rest and rest[0] == "namespaces":
        rest = rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    verb = {"GET": "get" if named else "list", "POST": "create", "PUT": "update"}.get(
        method, method.lower()
    )
    return group, resource, verb


def granted(rendered: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """The (group, resource, verb) triples the workers' ClusterRole grants."""
    (role,) = [o for o in rendered if o["kind"] == "ClusterRole"]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_the_workers_role_grants_exactly_what_the_actions_use(overlay, tmp_path):
    """RBAC derived, not guessed: every request each registered action sends over its whole
    lifecycle, and nothing else, is what deploy/'s ClusterRole grants."""
    assert granted(render_manifests(overlay)) == used_permissions(tmp_path)
