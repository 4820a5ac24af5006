"""Policy backtest: replay stored incidents through the current policies, change nothing.

Incidents opened in the window are replayed in the order their alerts arrived; each alert
that a policy matches is decided at the moment it was first seen, with the guardrails fed by
the backtest's own earlier decisions (not the real ones), so the result says what these
policies would have done on that history: what they would have run, asked for, or only
planned, what each guardrail would have refused, and how many actions per hour that means.
No cluster is contacted, so plans are not computed and the blast radius (which needs the live
replica count) is not evaluated; everything else is.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from controlplane.domain.models import DecisionStatus
from controlplane.policy.decider import alert_view
from controlplane.policy.engine import decide
from controlplane.policy.guardrails import PastAction, matches
from controlplane.policy.schema import Policy
from controlplane.storage.models import IncidentRow
from remediations import ActionParams, Plan

OUTCOMES = {
    DecisionStatus.APPROVED: "would run",
    DecisionStatus.PENDING_APPROVAL: "would ask for approval",
    DecisionStatus.DRY_RUN: "would only plan",
    DecisionStatus.REFUSED: "refused",
}


@dataclass
class BacktestResult:
    since: datetime | None
    until: datetime | None
    incidents: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        by_policy: dict[str, Counter[str]] = defaultdict(Counter)
        refusals: Counter[str] = Counter()
        hours: Counter[str] = Counter()
        for d in self.decisions:
            by_policy[d["policy"]][d["outcome"]] += 1
            refusals.update(d["refused_by"])
            if DecisionStatus(d["status"]).counts_as_acting:
                hours[d["at"][:13]] += 1  # YYYY-MM-DDTHH
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
) -> BacktestResult:
    query = select(IncidentRow).options(selectinload(IncidentRow.alerts))
    if since is not None:
        query = query.where(IncidentRow.opened_at >= since)
    if until is not None:
        query = query.where(IncidentRow.opened_at < until)
    incidents = session.scalars(query.order_by(IncidentRow.opened_at)).all()
    result = BacktestResult(since, until, incidents=len(incidents))
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
                }
            )
    return result


def _unplanned(params: ActionParams) -> Plan:
    return Plan(params.type, {}, {}, {}, "not planned in a backtest (no cluster contacted)")
