"""Policies: the schema and its errors, matching, placeholders, every guardrail, and the
invariants (Hypothesis): whatever the incident stream, no more actions per hour and no larger
replica change than configured, and the kill switch stops everything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import remediations
from controlplane.domain.errors import ConfigError, PermanentError
from controlplane.policy.engine import decide, render
from controlplane.policy.guardrails import IncidentView, PastAction, matches
from controlplane.policy.schema import Policy, load_file, load_policies
from remediations import ActionParams, Plan

POLICIES = Path(__file__).resolve().parents[2] / "runbooks" / "policies"
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday


def incident(service: str = "checkout", **labels: str) -> IncidentView:
    return IncidentView(
        incident_id=1,
        source=labels.pop("source", "alertmanager"),
        service=service,
        severity=labels.pop("severity", "critical"),
        labels={"alertname": "HighLatency", "service": service, "namespace": "shop", **labels},
        title="HighLatency: checkout p95 2.4 s",
    )


def policy(**fields) -> Policy:
    base = {
        "name": "p",
        "action": {"type": "scale_deployment", "by": 2},
        "mode": "auto",
    }
    return Policy.model_validate({**base, **fields})


def planner(current: int = 4):
    def plan(params: ActionParams) -> Plan:
        values = params.model_dump()
        if "by" not in values:  # not a scaling action: nothing guardrails count
            return Plan(params.type, {}, {}, {"done": True}, params.type)
        after = values["replicas"] if values["replicas"] is not None else current + values["by"]
        return Plan(params.type, {}, {"replicas": current}, {"replicas": max(0, after)}, "scale")

    return plan


def run(p: Policy, history=(), *, paused=False, at=NOW, current=4, view=None):
    return decide(
        p,
        view or incident(),
        list(history),
        at,
        paused=paused,
        global_max_per_hour=20,
        planner=planner(current),
    )


# -- schema ---------------------------------------------------------------------------------
def test_shipped_policies_load():
    loaded = {p.name: p for p in load_policies(POLICIES)}
    assert loaded["checkout-latency-scale-out"].mode == "approval"
    assert loaded["payments-errors-rollback"].runbook == "rollback-deployment"
    assert len({p.version for p in loaded.values()}) == len(loaded)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("policies: [{name: a, action: {type: notify, url: x}, colour: red}]",
         "policy 'a': colour = 'red': Extra inputs are not permitted"),
        ("policies: [{name: a, action: {type: scale_deployment, by: 1}, mode: yolo}]",
         "policy 'a': mode = 'yolo'"),
        ("policies: [{name: a, action: {type: scale_deployment}}]",
         "policy 'a': action = {'type': 'scale_deployment'}: set exactly one of"),
        ("policies: [{name: a, action: {type: reboot_everything}}]",
         "policy 'a': action"),
        ("policies: [{name: a, runbook: nope, action: {type: notify, url: x}}]",
         "policy 'a': runbook = 'nope': no runbook named 'nope'"),
        ("policies: [{name: A B, action: {type: notify, url: x}}]",
         "policy 'A B': name = 'A B': must be lowercase"),
        ("policies: [{name: a, action: {type: scale_deployment, by: 1},"
         " guardrails: {blast_radius: {max_replica_change: -1}}}]",
         "policy 'a': guardrails.blast_radius.max_replica_change = -1"),
        ("policies: [oops", "is not valid YAML"),
    ],
)  # fmt: skip
def test_bad_policy_files_name_file_policy_key_and_value(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_duplicate_names_across_files(tmp_path):
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("policies: [{name: same, action: {type: notify, url: x}}]")
    with pytest.raises(ConfigError, match="name 'same' is used twice"):
        load_policies(tmp_path)


# -- matching and parameters ---------------------------------------------------------------------
def test_matching_on_every_field():
    view = incident(detector="ensemble", source="detector", env="prod")
    assert matches(policy(match={"service": ["checkout"], "source": ["detector"]}), view)
    assert matches(policy(match={"detector": ["ensemble"], "labels": {"env": "prod"}}), view)
    assert not matches(policy(match={"severity": ["warning"]}), view)
    assert not matches(policy(match={"alertname": ["Other"]}), view)
    assert not matches(policy(match={"labels": {"env": "staging"}}), view)


def test_placeholders_come_from_the_incident():
    template = remediations.parse(
        {"type": "failover", "standby": "checkout-standby",
         "standby_selector": {"app": "{labels[pod]}"}}
    )  # fmt: skip
    params = render(template, incident(pod="checkout-7d9f-1")).model_dump()
    assert (params["namespace"], params["service"]) == ("shop", "checkout")
    assert params["standby_selector"] == {"app": "checkout-7d9f-1"}
    refused = run(policy(action={"type": "rollout_restart", "deployment": "{labels[missing]}"}))
    assert refused.status == "refused"
    assert "has no value for 'missing'" in refused.reason


# -- guardrails ------------------------------------------------------------------------
def test_modes_settle_the_status():
    assert run(policy(mode="auto")).status == "approved"
    assert run(policy(mode="approval")).status == "pending_approval"
    dry = run(policy(mode="dry_run"), paused=True)
    assert dry.status == "dry_run"
    assert any(c["guardrail"] == "kill switch" and not c["ok"] for c in dry.checks)
    assert dry.plan is not None
    assert dry.plan.after == {"replicas": 6}


def test_kill_switch_refuses_everything_that_acts():
    decision = run(policy(), paused=True)
    assert (decision.status, decision.reason) == ("refused", "automation is paused")
    assert decision.plan is None


def test_cooldown_and_rates():
    target = "deployment/shop/checkout"
    recent = [PastAction("p", target, NOW - timedelta(seconds=60))]
    cooled = run(policy(guardrails={"cooldown_seconds": 300}), recent)
    assert cooled.status == "refused"
    assert "acted on deployment/shop/checkout 60 s ago (cooldown 300 s)" in cooled.reason
    assert run(policy(guardrails={"cooldown_seconds": 30}), recent).status == "approved"
    others = [
        PastAction("p", f"deployment/shop/x{i}", NOW - timedelta(minutes=i)) for i in range(3)
    ]
    limited = run(policy(guardrails={"max_actions_per_hour": 3, "cooldown_seconds": 0}), others)
    assert "3 of 3 actions of this policy in the last hour" in limited.reason
    old = [PastAction("p", "deployment/shop/x", NOW - timedelta(minutes=61))] * 5
    assert run(policy(guardrails={"max_actions_per_hour": 3}), old).status == "approved"


def test_namespaces_environments_and_change_windows():
    assert run(policy(guardrails={"namespaces": ["prod"]})).reason.startswith("namespace 'shop'")
    env = run(policy(guardrails={"environments": ["prod"]}), view=incident(env="staging"))
    assert "environment 'staging' not in ['prod']" in env.reason
    window = {"maintenance_windows": [{"days": ["sat", "sun"], "start": "00:00", "end": "23:59"}]}
    assert run(policy(guardrails=window)).reason == "outside every change window"
    night = {"maintenance_windows": [{"start": "22:00", "end": "06:00"}]}
    assert run(policy(guardrails=night), at=NOW.replace(hour=23)).status == "approved"
    assert run(policy(guardrails=night), at=NOW.replace(hour=5)).status == "approved"
    assert run(policy(guardrails=night)).status == "refused"


def test_blast_radius_on_the_plan():
    big = policy(action={"type": "scale_deployment", "replicas": 20})
    refused = run(policy(action={"type": "scale_deployment", "replicas": 20},
                         guardrails={"blast_radius": {"max_replica_change": 4}}))  # fmt: skip
    assert refused.status == "refused"
    assert "change of 16 replicas (at most 4)" in refused.reason
    assert refused.plan is not None  # the plan shows what was refused
    percent = run(big.model_copy(update={"guardrails": big.guardrails.model_copy(update={
        "blast_radius": big.guardrails.blast_radius.model_copy(
            update={"max_replica_change_percent": 50.0})})}))  # fmt: skip
    assert "(at most 50.0% = 2)" in percent.reason
    bounds = run(policy(guardrails={"blast_radius": {"max_replicas": 5}}))
    assert "6 replicas within [0, 5]" in bounds.reason


def test_planning_errors_refuse_with_the_reason():
    def failing(params: ActionParams) -> Plan:
        raise PermanentError('Kubernetes API: 404 deployments "checkout" not found')

    decision = decide(
        policy(), incident(), [], NOW, paused=False, global_max_per_hour=5, planner=failing
    )
    assert decision.status == "refused"
    assert decision.reason.startswith("planning failed: Kubernetes API: 404")


# -- invariants ------------------------------------------------------------------------
events = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=4 * 3600),  # seconds after NOW
        st.sampled_from(["checkout", "payments", "search", "cart"]),
        st.integers(min_value=0, max_value=2),  # which policy
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    stream=events,
    per_hour=st.integers(min_value=0, max_value=5),
    global_per_hour=st.integers(min_value=0, max_value=8),
    cooldown=st.integers(min_value=0, max_value=3600),
    max_change=st.integers(min_value=0, max_value=6),
    step=st.integers(min_value=-8, max_value=8),
    paused=st.booleans(),
)
def test_guardrails_bound_actions_whatever_the_stream(
    stream, per_hour, global_per_hour, cooldown, max_change, step, paused
):
    policies = [
        policy(
            name=f"p{i}",
            action={"type": "scale_deployment", "deployment": "{service}", "by": step},
            guardrails={
                "cooldown_seconds": cooldown,
                "max_actions_per_hour": per_hour,
                "blast_radius": {"max_replica_change": max_change},
            },
        )
        for i in range(3)
    ]
    history: list[PastAction] = []
    approved = []
    for offset, service, which in sorted(stream):
        at = NOW + timedelta(seconds=offset)
        decision = decide(
            policies[which],
            incident(service),
            history,
            at,
            paused=paused,
            global_max_per_hour=global_per_hour,
            planner=planner(4),
        )
        if decision.changes_something:
            history.append(PastAction(decision.policy.name, decision.target.key, at))
            approved.append((at, decision))
    if paused:
        assert not approved
    for at, decision in approved:
        window = [d for t, d in approved if at - timedelta(hours=1) < t <= at]
        assert len(window) <= global_per_hour
        assert sum(d.policy.name == decision.policy.name for d in window) <= per_hour
        assert abs(decision.plan.after["replicas"] - decision.plan.before["replicas"]) <= max_change
        earlier = [t for t, d in approved if d.target == decision.target and t < at]
        assert all((at - t).total_seconds() >= cooldown for t in earlier)


def test_each_action_names_the_object_it_changes():
    """Cooldowns are per target: two webhooks or two caches are two targets, never one."""
    first = run(policy(action={"type": "notify", "url": "https://hooks.example/a/secret"}))
    second = run(
        policy(action={"type": "notify", "url": "https://hooks.example/b/secret"}),
        history=[PastAction("p", first.target.key, NOW)],
    )
    assert first.target.kind == "Webhook"
    assert first.target.key != second.target.key
    assert "secret" not in first.target.key  # the URL of a webhook is a credential
    assert second.status == "approved"  # no shared cooldown
    cache = run(
        policy(action={"type": "warm_cache", "target": "redis", "url": "redis://h:6379/0",
                       "keys_file": "keys.txt"})
    )  # fmt: skip
    assert cache.target.kind == "RedisCache"
    deployment = run(policy())
    assert deployment.target.key == "deployment/shop/checkout"


# -- maintenance windows --------------------------------------------------------------------
def window(automation, *, service="checkout", recurrence=None, minutes=None):
    from controlplane.domain.maintenance import MaintenanceWindow

    return MaintenanceWindow(
        window_id=7,
        name="db migration",
        service=service,
        namespace=None,
        starts_at=NOW - timedelta(days=30),
        ends_at=None if recurrence else NOW + timedelta(hours=1),
        recurrence=recurrence,
        duration_minutes=minutes,
        mute_paging=True,
        automation=automation,
    )


@pytest.mark.parametrize(
    ("mode", "automation", "status"),
    [
        ("auto", "approval", "pending_approval"),
        ("auto", "dry_run", "dry_run"),
        ("approval", "off", "refused"),
        ("dry_run", "approval", "dry_run"),  # a window never raises a policy's mode
        ("auto", None, "approved"),
    ],
)
def test_a_maintenance_window_caps_the_policy_mode(mode, automation, status):
    decided = decide(
        policy(mode=mode),
        incident(),
        [],
        NOW,
        paused=False,
        global_max_per_hour=20,
        planner=planner(),
        window=window(automation),
    )
    assert decided.status == status
    if automation == "off":
        assert "maintenance window #7 'db migration' turns automation off" in decided.reason
        assert decided.plan is None  # nothing was planned
    elif mode == "auto" and automation:
        assert f"runs auto policies as {automation}" in decided.reason


def test_recurring_windows_open_on_their_schedule_and_cover_their_scope():
    weekly = window("approval", recurrence="0 11 * * wed", minutes=90)  # NOW: Wednesday 12:00
    assert weekly.open_at(NOW)
    assert not weekly.open_at(NOW + timedelta(minutes=31))
    assert not weekly.open_at(NOW + timedelta(days=1))
    assert weekly.open_at(NOW + timedelta(days=7))
    assert weekly.covers("checkout", "shop")
    assert not weekly.covers("payments", "shop")
    assert window("off", service=None).covers("anything", None)


@pytest.mark.parametrize(
    ("left", "status", "detail"),
    [
        (0.5, "approved", "SLO 'checkout' has 50.0% of its error budget left (needs 10%)"),
        (0.05, "refused", "SLO 'checkout' has 5.0% of its error budget left (needs 10%)"),
        (None, "refused", "the budget left cannot be told (no data), so no risk is taken"),
    ],
)
def test_a_policy_can_require_error_budget_left(left, status, detail):
    needs = policy(guardrails={"min_error_budget": {"slo": "checkout", "remaining": 0.1}})
    decided = decide(
        needs,
        incident(),
        [],
        NOW,
        paused=False,
        global_max_per_hour=20,
        planner=planner(),
        budgets={"checkout": left},
    )
    assert decided.status == status
    (check,) = [c for c in decided.checks if c["guardrail"] == "error budget"]
    assert detail in check["detail"]
