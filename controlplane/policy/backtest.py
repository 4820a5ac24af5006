"""Policy backtest: replay stored incidents through the current policies, change nothing.

Incidents opened in the window are replayed in the order their alerts arrived; each alert
that a policy matches is decided at the moment it was first seen, with the guardrails fed by
the backtest's own earlier decisions (not the real ones), so the result says what these
policies would have done on that history: what they would have run, asked for, or only
planned, what each guardrail would have refused, and how many actions per hour that means.
No cluster is contacted, so plans are not computed and the blast radius (which needs the live
replica count) is not evaluated; everything else is.

What each policy would have spent: a decision that would run (or ask) is priced at what the
stored decision of the same policy for the same incident recorded (`plan.cost.per_hour`),
else, for a relative scale (`by`), at the workload's `cost.replica_hour`; it costs that from
its moment to the end of the window (now, when open). Budgets are not replayed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from controlplane.config import CostSettings
from controlplane.domain.models import DecisionStatus
from controlplane.policy.decider import alert_view
from controlplane.policy.engine import Decision, decide
from controlplane.policy.guardrails import PastAction, matches
from controlplane.policy.schema import Policy
from controlplane.storage.models import DecisionRow, IncidentRow
from remediations import ActionParams, Plan

OUTCOMES = {
    DecisionStatus.APPROVED: "would run",
    DecisionStatus.PENDING_APPROVAL: "would ask for approval",
    DecisionStatus.DRY_RUN: "would only plan",
    DecisionStatus.REFUSED: "refused",
}
#: Decisions whose change would have been made: cleared to run, or asked for and (the
#: backtest assumes) approved.
SPENDING = {DecisionStatus.APPROVED, DecisionStatus.PENDING_APPROVAL}


@dataclass
class BacktestResult:
    since: datetime | None
    until: datetime | None
    incidents: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    currency: str = ""

    def summary(self) -> dict[str, Any]:
        by_policy: dict[str, Counter[str]] = defaultdict(Counter)
        refusals: Counter[str] = Counter()
        hours: Counter[str] = Counter()
        cost: dict[str, dict[str, Any]] = {}
        for d in self.decisions:
            by_policy[d["policy"]][d["outcome"]] += 1
            refusals.update(d["refused_by"])
            if DecisionStatus(d["status"]).counts_as_acting:
                hours[d["at"][:13]] += 1  # YYYY-MM-DDTHH
            if DecisionStatus(d["status"]) in SPENDING:
                spent = cost.setdefault(
                    d["policy"], {"added_per_hour": 0.0, "spent": 0.0, "unpriced": 0}
                )
                if d["cost_per_hour"] is None:
                    spent["unpriced"] += 1
                else:
                    spent["added_per_hour"] += d["cost_per_hour"]
                    spent["spent"] += d["spent"]
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "incidents": self.incidents,
            "decisions": len(self.decisions),
            "by_policy": {name: dict(counts) for name, counts in sorted(by_policy.items())},
            "refused_by_guardrail": dict(refusals.most_common()),
            "actions_per_hour": {
                "max": max(hours.values(), default=0),
                "busiest_hour": max(hours, key=lambda h: hours[h]) if hours else None,
                "hours_with_actions": len(hours),
                "mean_in_those_hours": round(sum(hours.values()) / len(hours), 2) if hours else 0,
            },
            "cost": {"currency": self.currency, "by_policy": dict(sorted(cost.items()))},
        }

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "decisions": self.decisions}


def backtest(
    session: Session,
    policies: list[Policy],
    *,
    since: datetime | None,
    until: datetime | None,
    global_max_per_hour: int,
    cost: CostSettings | None = None,
) -> BacktestResult:
    window = [
        *([IncidentRow.opened_at >= since] if since is not None else []),
        *([IncidentRow.opened_at < until] if until is not None else []),
    ]
    query = select(IncidentRow).options(selectinload(IncidentRow.alerts)).where(*window)
    incidents = session.scalars(query.order_by(IncidentRow.opened_at)).all()
    result = BacktestResult(since, until, incidents=len(incidents))
    replayed = select(IncidentRow.incident_id).where(*window)
    pricing = _Pricing(session, replayed, cost or CostSettings())
    result.currency = pricing.cost.currency
    end = until or datetime.now(UTC)
    events = sorted(
        (
            (alert.first_seen_at, incident, alert.labels)
            for incident in incidents
            for alert in incident.alerts
        ),
        key=lambda e: (e[0], e[1].incident_id),
    )
    history: list[PastAction] = []
    decided: set[tuple[int, str]] = set()
    for at, incident, labels in events:
        view = alert_view(incident, labels)
        for policy in policies:
            key = (incident.incident_id, policy.name)
            if not policy.enabled or key in decided or not matches(policy, view):
                continue
            decided.add(key)
            decision = decide(
                policy,
                view,
                history,
                at,
                paused=False,
                global_max_per_hour=global_max_per_hour,
                planner=_unplanned,
            )
            if decision.changes_something:
                history.append(PastAction(policy.name, decision.target.key, at))
            per_hour = pricing.per_hour(decision) if decision.status in SPENDING else None
            hours = max(0.0, (end - at).total_seconds() / 3600)
            result.decisions.append(
                {
                    "at": at.isoformat(),
                    "incident_id": incident.incident_id,
                    "incident": incident.title,
                    "policy": policy.name,
                    "mode": policy.mode,
                    "target": decision.target.key,
                    "status": decision.status,
                    "outcome": OUTCOMES.get(decision.status, decision.status),
                    "reason": decision.reason,
                    "refused_by": [c["guardrail"] for c in decision.checks if not c["ok"]]
                    if decision.status == "refused"
                    else [],
                    "cost_per_hour": per_hour,
                    "spent": None if per_hour is None else per_hour * hours,
                }
            )
    return result


class _Pricing:
    """What a backtest decision adds per hour: as the stored decision recorded, else a
    relative scale at the workload's replica-hour price; None when neither prices it."""

    def __init__(self, session: Session, incidents: Select[Any], cost: CostSettings) -> None:
        self.cost = cost
        rows = session.execute(
            select(DecisionRow.incident_id, DecisionRow.policy, DecisionRow.plan).where(
                DecisionRow.incident_id.in_(incidents.scalar_subquery())
            )
        ).all()
        self.recorded = {
            (incident, policy): float(plan["cost"]["per_hour"])
            for incident, policy, plan in rows
            if plan and (plan.get("cost") or {}).get("per_hour") is not None
        }

    def per_hour(self, decision: Decision) -> float | None:
        recorded = self.recorded.get((decision.incident_id, decision.policy.name))
        if recorded is not None:
            return recorded
        if not str(decision.params.get("type", "")).startswith("scale_"):
            return 0.0  # restarts, rollbacks, failovers and shifts add no replicas
        by = decision.params.get("by")
        if by is None:  # an absolute count: what it adds depends on the count then
            return None
        target = f"{decision.target.namespace}/{decision.target.name}"
        price = self.cost.replica_price(target, 0, 0)  # its requests are not known here
        return None if price is None else int(by) * price


def _unplanned(params: ActionParams) -> Plan:
    return Plan(params.type, {}, {}, {}, "not planned in a backtest (no cluster contacted)")
