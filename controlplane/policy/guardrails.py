"""Matching and guardrails: pure functions from an incident, a policy and the record of past
actions to a verdict. No I/O, so that every rule can be checked exhaustively (Hypothesis).

The order of checks is the order a human would ask: is automation paused, is this target in
an allowed namespace and environment, are we inside a change window, did we act on it too
recently, have we acted too often this hour (this policy, then all policies), and, once a plan
exists, is the change within the blast radius.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from controlplane.policy.schema import BlastRadius, Guardrails, Policy
from remediations import Impact
from remediations.base import REPLICAS

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class IncidentView:
    """What policies see of an incident."""

    incident_id: int
    source: str
    service: str | None
    severity: str
    labels: Mapping[str, str]
    title: str = ""

    @property
    def alertname(self) -> str | None:
        return self.labels.get("alertname")

    @property
    def detector(self) -> str | None:
        return self.labels.get("detector")

    @property
    def namespace(self) -> str | None:
        return self.labels.get("namespace")

    @property
    def environment(self) -> str | None:
        return self.labels.get("env") or self.labels.get("environment")


@dataclass(frozen=True)
class PastAction:
    """An action that changed (or was cleared to change) something: counts for guardrails."""

    policy: str
    target: str
    at: datetime


@dataclass
class Verdict:
    allowed: bool
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        failed = [c["detail"] for c in self.checks if not c["ok"]]
        return "; ".join(failed) if failed else "all guardrails passed"

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append({"guardrail": name, "ok": ok, "detail": detail})
        self.allowed = self.allowed and ok


#: Incidents policies only act on when their `match.source` names it: a suspected attack is
#: not answered by scaling out unless a policy says so.
SECURITY = "security"


def matches(policy: Policy, incident: IncidentView) -> bool:
    m = policy.match
    if incident.source == SECURITY and SECURITY not in (m.source or []):
        return False
    checks = [
        (m.source, incident.source),
        (m.service, incident.service),
        (m.severity, incident.severity),
        (m.alertname, incident.alertname),
        (m.detector, incident.detector),
    ]
    for wanted, value in checks:
        if wanted is not None and value not in wanted:
            return False
    return all(incident.labels.get(k) == v for k, v in m.labels.items())


def check_before_plan(
    policy: Policy,
    incident: IncidentView,
    target: str,
    namespace: str | None,
    history: Iterable[PastAction],
    now: datetime,
    *,
    paused: bool,
    global_max_per_hour: int,
    budgets: Mapping[str, float | None] | None = None,
) -> Verdict:
    """Guardrails that need no plan (`budgets`: the error budget left per SLO name, None
    where it cannot be told). The engine records them for dry runs too, so a dry run
    shows what `auto` would have met, but never refuses a dry run (it changes nothing)."""
    verdict = Verdict(True)
    rails = policy.guardrails
    verdict.check("kill switch", not paused, "automation is paused" if paused else "automation on")
    if rails.namespaces is not None:
        ok = namespace in rails.namespaces
        verdict.check(
            "namespaces",
            ok,
            f"namespace {namespace!r} " + ("allowed" if ok else f"not in {rails.namespaces}"),
        )
    if rails.environments is not None:
        env = incident.environment
        ok = env in rails.environments
        verdict.check(
            "environments",
            ok,
            f"environment {env!r} " + ("allowed" if ok else f"not in {rails.environments}"),
        )
    if rails.maintenance_windows:
        ok = any(w.contains(now) for w in rails.maintenance_windows)
        verdict.check(
            "maintenance windows",
            ok,
            "inside a change window" if ok else "outside every change window",
        )
    if rails.min_error_budget is not None:
        rule = rails.min_error_budget
        left = (budgets or {}).get(rule.slo)
        ok = left is not None and left >= rule.remaining
        verdict.check(
            "error budget",
            ok,
            f"SLO {rule.slo!r}: the budget left cannot be told (no data), so no risk is taken"
            if left is None
            else f"SLO {rule.slo!r} has {100 * left:.1f}% of its error budget left "
            f"(needs {100 * rule.remaining:g}%)",
        )
    past = [a for a in history if a.at <= now]
    last = max((a.at for a in past if a.target == target), default=None)
    ago = (now - last).total_seconds() if last is not None else None
    cooling = ago is not None and ago < rails.cooldown_seconds
    verdict.check(
        "cooldown",
        not cooling,
        f"acted on {target} {ago:.0f} s ago (cooldown {rails.cooldown_seconds} s)"
        if cooling
        else f"no action on {target} within {rails.cooldown_seconds} s",
    )
    this_hour = [a for a in past if now - a.at < HOUR]
    mine = sum(a.policy == policy.name for a in this_hour)
    verdict.check(
        "policy rate",
        mine < rails.max_actions_per_hour,
        f"{mine} of {rails.max_actions_per_hour} actions of this policy in the last hour",
    )
    verdict.check(
        "global rate",
        len(this_hour) < global_max_per_hour,
        f"{len(this_hour)} of {global_max_per_hour} actions of all policies in the last hour",
    )
    return verdict


def check_impact(rails: Guardrails, impact: Impact, verdict: Verdict) -> None:
    """Guardrails on what a plan moves; each reads the impact quantity it limits."""
    replicas = impact.of(REPLICAS)
    if replicas is not None:
        before, after = replicas
        check_blast_radius(rails.blast_radius, int(before), int(after), verdict)


def check_blast_radius(radius: BlastRadius, before: int, after: int, verdict: Verdict) -> None:
    """Replica limits on a planned change (absolute, percent of the current, min and max)."""
    change = abs(after - before)
    if radius.max_replica_change is not None:
        verdict.check(
            "blast radius",
            change <= radius.max_replica_change,
            f"change of {change} replicas (at most {radius.max_replica_change})",
        )
    if radius.max_replica_change_percent is not None:
        percent = radius.max_replica_change_percent
        limit = math.floor(before * percent / 100)
        verdict.check(
            "blast radius %",
            change <= limit,
            f"change of {change} replicas from {before} (at most {percent}% = {limit})",
        )
    high = radius.max_replicas
    within = after >= radius.min_replicas and (high is None or after <= high)
    bounds = f"[{radius.min_replicas}, {high if high is not None else 'no max'}]"
    verdict.check("replica bounds", within, f"{after} replicas within {bounds}")
