"""The policy engine: for one incident and one matching policy, a `Decision`.

`decide` fills the policy's parameters from the incident, runs the guardrails that need no
plan, asks the planner for the plan (read-only; with a cluster, a server-side dry run), checks
the blast radius on it, and settles the status:

- `refused`: a guardrail said no (the reason names it); nothing will run;
- `dry_run`: the policy only plans; the plan and its diff are the result;
- `pending_approval`: an operator must approve it before it runs;
- `approved`: `auto` mode, every guardrail passed; the executor runs it.

A dry-run decision is never refused (it changes nothing) but records every guardrail's
verdict, so it shows what `auto` would have met.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controlplane.domain.errors import ControlPlaneError
from controlplane.policy.guardrails import (
    IncidentView,
    PastAction,
    Verdict,
    check_before_plan,
    check_blast_radius,
)
from controlplane.policy.schema import Policy
from remediations.base import Plan

Planner = Callable[[dict[str, Any]], Plan]
DEFAULT_NAMESPACE = "default"


@dataclass
class Decision:
    policy: Policy
    incident_id: int
    target: str
    params: dict[str, Any]
    status: str
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    plan: Plan | None = None

    @property
    def changes_something(self) -> bool:
        """Counts against rates and cooldowns: cleared to act, or waiting for a yes."""
        return self.status in ("approved", "pending_approval")


def render(params: Mapping[str, Any], incident: IncidentView) -> dict[str, Any]:
    """Fill `{service}`, `{namespace}`, `{summary}` and `{labels[NAME]}` from the incident."""
    values = {
        "service": incident.service or "",
        "namespace": incident.namespace or DEFAULT_NAMESPACE,
        "summary": incident.title,
        "labels": dict(incident.labels),
    }
    return {key: _fill(key, value, values) for key, value in params.items()}


def target_of(params: Mapping[str, Any]) -> str:
    """The object an action changes, for cooldowns: kind/namespace/name."""
    kind = params["type"]
    if kind in ("scale_deployment", "rollout_restart", "rollback_deployment"):
        return f"deployment/{params['namespace']}/{params['deployment']}"
    if kind == "failover":
        return f"service/{params['namespace']}/{params['service']}"
    return f"{kind}/{params.get('url', '')}"


def decide(
    policy: Policy,
    incident: IncidentView,
    history: Iterable[PastAction],
    now: datetime,
    *,
    paused: bool,
    global_max_per_hour: int,
    planner: Planner,
) -> Decision:
    try:
        params = render(policy.action.model_dump(), incident)
    except ValueError as exc:
        return Decision(policy, incident.incident_id, "?", {}, "refused", str(exc))
    target = target_of(params)
    verdict = check_before_plan(
        policy,
        incident,
        target,
        params.get("namespace"),
        history,
        now,
        paused=paused,
        global_max_per_hour=global_max_per_hour,
    )
    decision = Decision(policy, incident.incident_id, target, params, "refused", "", verdict.checks)
    if not verdict.allowed and policy.mode != "dry_run":
        decision.reason = verdict.reason
        return decision
    try:
        decision.plan = planner(params)
    except ControlPlaneError as exc:
        decision.reason = f"planning failed: {exc}"
        return decision
    _check_plan(policy, decision.plan, verdict)
    decision.checks = verdict.checks
    decision.status, decision.reason = _settle(policy, verdict)
    return decision


def _check_plan(policy: Policy, plan: Plan, verdict: Verdict) -> None:
    before, after = plan.before.get("replicas"), plan.after.get("replicas")
    if isinstance(before, int) and isinstance(after, int):
        check_blast_radius(policy.guardrails.blast_radius, before, after, verdict)


def _settle(policy: Policy, verdict: Verdict) -> tuple[str, str]:
    if policy.mode == "dry_run":
        return "dry_run", "dry-run policy: planned only (" + verdict.reason + ")"
    if not verdict.allowed:
        return "refused", verdict.reason
    if policy.mode == "approval":
        return "pending_approval", "waiting for an operator's approval"
    return "approved", verdict.reason


def _fill(key: str, value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(f"{key}.{k}", v, values) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    try:
        filled = string.Formatter().vformat(value, (), values)
    except (KeyError, IndexError, AttributeError) as exc:
        raise ValueError(
            f"parameter {key!r} = {value!r}: the incident has no value for {exc}"
        ) from None
    if not filled:
        raise ValueError(f"parameter {key!r} = {value!r} is empty for this incident")
    return filled
