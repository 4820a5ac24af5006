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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import remediations
from controlplane.domain.errors import ControlPlaneError
from controlplane.domain.maintenance import MODE_ORDER, MaintenanceWindow
from controlplane.domain.models import DecisionStatus
from controlplane.policy.cost import CostModel, Spend
from controlplane.policy.guardrails import (
    IncidentView,
    PastAction,
    Verdict,
    check_before_plan,
    check_impact,
)
from controlplane.policy.schema import Policy
from remediations import Action, ActionParams, Plan, TargetRef

Planner = Callable[[ActionParams], Plan]
#: Builds the action for its parameters (through the registry, with the cluster connection).
Builder = Callable[[ActionParams], Action[Any]]
DEFAULT_NAMESPACE = "default"
UNRESOLVED = TargetRef("Unresolved", "?")


@dataclass
class Decision:
    policy: Policy
    incident_id: int
    target: TargetRef
    params: dict[str, Any]
    status: DecisionStatus
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    plan: Plan | None = None
    #: The mode it was decided in: the policy's, or less inside a maintenance window.
    mode: str = ""
    #: What the change adds to the hourly spend (None: nothing prices it).
    cost_per_hour: float | None = None

    def __post_init__(self) -> None:
        self.mode = self.mode or self.policy.mode

    @property
    def changes_something(self) -> bool:
        """Counts against rates and cooldowns: cleared to act, or waiting for a yes."""
        return self.status in (DecisionStatus.APPROVED, DecisionStatus.PENDING_APPROVAL)


def render(params: ActionParams, incident: IncidentView) -> ActionParams:
    """Fill `{service}`, `{namespace}`, `{summary}` and `{labels[NAME]}` from the incident,
    and validate the result against the action's params model."""
    values = {
        "service": incident.service or "",
        "namespace": incident.namespace or DEFAULT_NAMESPACE,
        "summary": incident.title,
        "labels": dict(incident.labels),
    }
    filled = {key: _fill(key, value, values) for key, value in params.model_dump().items()}
    return remediations.parse(filled)


def decide(
    policy: Policy,
    incident: IncidentView,
    history: Iterable[PastAction],
    now: datetime,
    *,
    paused: bool,
    global_max_per_hour: int,
    planner: Planner,
    window: MaintenanceWindow | None = None,
    at_most: str | None = None,
    budgets: Mapping[str, float | None] | None = None,
    cost: CostModel | None = None,
    spend: Sequence[Spend] = (),
) -> Decision:
    """`window`: the maintenance window covering the incident, which caps the policy's mode
    (`off`: refused before anything is planned); `at_most` caps it too (a proposal from an
    agent runs at most in approval mode)."""
    try:
        params = render(policy.action, incident)
    except ValueError as exc:
        refused = DecisionStatus.REFUSED
        return Decision(policy, incident.incident_id, UNRESOLVED, {}, refused, str(exc))
    action = remediations.action_class(params)
    target = action.target(params)
    mode = window.cap(policy.mode) if window else policy.mode
    if at_most is not None:
        mode = min(mode, at_most, key=MODE_ORDER.index)
    if mode == "off":
        assert window is not None
        reason = f"{window.label} turns automation off for this service; nothing was planned"
        refused = DecisionStatus.REFUSED
        dumped = params.model_dump(mode="json")
        return Decision(policy, incident.incident_id, target, dumped, refused, reason, mode=mode)
    verdict = check_before_plan(
        policy,
        incident,
        target.key,
        target.namespace,
        history,
        now,
        paused=paused,
        global_max_per_hour=global_max_per_hour,
        budgets=budgets,
    )
    decision = Decision(
        policy,
        incident.incident_id,
        target,
        params.model_dump(mode="json"),
        DecisionStatus.REFUSED,
        "",
        verdict.checks,
        mode=mode,
    )
    if not verdict.allowed and mode != "dry_run":
        decision.reason = verdict.reason
        return decision
    try:
        decision.plan = planner(params)
    except ControlPlaneError as exc:
        decision.reason = f"planning failed: {exc}"
        return decision
    impact = action.impact(params, decision.plan)
    check_impact(policy.guardrails, impact, verdict)
    if cost is not None:
        decision.cost_per_hour = cost.per_hour(target, impact)
        if decision.cost_per_hour is not None:
            over = cost.check(target, decision.cost_per_hour, spend, now, verdict)
            if over == "approval":
                mode = min(mode, "approval", key=MODE_ORDER.index)
    decision.mode = mode
    decision.checks = verdict.checks
    decision.status, decision.reason = _settle(mode, verdict)
    if window is not None and window.cap(policy.mode) != policy.mode:
        decision.reason += f" ({window.label} runs {policy.mode} policies as {mode})"
    return decision


def _settle(mode: str, verdict: Verdict) -> tuple[DecisionStatus, str]:
    if mode == "dry_run":
        return DecisionStatus.DRY_RUN, "dry-run policy: planned only (" + verdict.reason + ")"
    if not verdict.allowed:
        return DecisionStatus.REFUSED, verdict.reason
    if mode == "approval":
        return DecisionStatus.PENDING_APPROVAL, "waiting for an operator's approval"
    return DecisionStatus.APPROVED, verdict.reason


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
