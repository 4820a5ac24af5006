"""The decide step of the policy loop: new and changed incidents against every policy.

Open incidents updated since the last pass are matched, alert by alert, against every
enabled policy; each match without a decision yet gets one (`engine.decide`: guardrails,
plan with a server-side dry run, status). The row is unique per (incident, policy), so two
replicas deciding at once store one decision; and one replica decides at a time (an advisory
lock), so rates and cooldowns count every decision, whichever replica made it. Every decision
is audited with its inputs (incident, alert labels, policy and version, parameters, plan and
diff, guardrail verdicts) and noted on the incident's timeline.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from controlplane.domain.models import AlertStatus, Severity, TimelineKind
from controlplane.policy.engine import Decision, Planner, decide
from controlplane.policy.guardrails import IncidentView, PastAction, matches
from controlplane.policy.schema import Policy
from controlplane.policy.state import is_paused
from controlplane.storage import Database, audit
from controlplane.storage import decisions as store
from controlplane.storage.models import DecisionRow, IncidentRow

ACTOR = "policy-engine"
#: How far back decisions count for rates and cooldowns.
LOOKBACK = timedelta(hours=24)
EVALUATION_LOCK = 0x41494F5001  # "AIOP" + 1: the policy evaluation advisory lock


class Decider:
    def __init__(
        self,
        db: Database,
        policies: list[Policy],
        planner: Planner,
        *,
        global_max_per_hour: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.db, self.policies, self.planner = db, policies, planner
        self.global_max_per_hour = global_max_per_hour
        self.clock = clock
        self.watermark = clock() - timedelta(hours=1)

    def run(self) -> list[int]:
        """Decide on what changed since the last pass; the ids of the stored decisions."""
        if not self.policies:
            return []
        with self.db.exclusive(EVALUATION_LOCK) as mine:
            if not mine:
                return []
            self.expire_resolved()
            return self._run()

    def expire_resolved(self) -> list[int]:
        """Decisions waiting for approval whose incident resolved become `stale`: what they
        would fix is over, so approving them as they are would act on yesterday's plan."""
        now = self.clock()
        with self.db.read() as session:  # a read first: no write lock taken twice a second
            if not store.any_pending_of_resolved(session):
                return []
        with self.db.write() as session:
            rows = store.pending_of_resolved(session)
            for row in rows:
                reason = (
                    f"incident #{row.incident_id} resolved before anyone approved this; "
                    "it will not run (a new incident gets a new decision)"
                )
                store.mark_stale(session, row, reason, actor=ACTOR, now=now)
            return [r.decision_id for r in rows]

    def _run(self) -> list[int]:
        now = self.clock()
        since, self.watermark = self.watermark - timedelta(seconds=5), now
        with self.db.read() as session:
            incidents = store.incidents_to_decide(session, since)
            if not incidents:  # the common case, twice a second: nothing more to read
                return []
            decided = store.decided(session, [i.incident_id for i in incidents])
            history = [
                PastAction(policy, target, at)
                for policy, target, at in store.acting_since(session, now - LOOKBACK)
            ]
            paused = is_paused(session)
            views = [(i.incident_id, _views(i)) for i in incidents]
        stored = []
        for incident_id, alert_views in views:
            for policy in self.policies:
                if not policy.enabled or (incident_id, policy.name) in decided:
                    continue
                view = next((v for v in alert_views if matches(policy, v)), None)
                if view is None:
                    continue
                decision = decide(
                    policy,
                    view,
                    history,
                    now,
                    paused=paused,
                    global_max_per_hour=self.global_max_per_hour,
                    planner=self.planner,
                )
                decided.add((incident_id, policy.name))
                decision_id = self._store(decision, view, now)
                if decision_id is not None:
                    stored.append(decision_id)
                    if decision.changes_something:
                        history.append(PastAction(policy.name, decision.target.key, now))
        return stored

    def _store(self, decision: Decision, view: IncidentView, now: datetime) -> int | None:
        policy = decision.policy
        plan = None
        if decision.plan is not None:
            plan = {
                **decision.plan.as_dict(),
                "server_dry_run": decision.plan.server_dry_run,
                "verify": policy.verify.model_dump(),
                "rollback_on_failure": policy.rollback_on_failure,
            }
        row = DecisionRow(
            incident_id=decision.incident_id,
            policy=policy.name,
            policy_version=policy.version,
            mode=policy.mode,
            action=policy.action.type,
            target=decision.target.key,
            params=decision.params,
            status=decision.status,
            reason=decision.reason,
            checks=decision.checks,
            plan=plan,
            runbook=policy.runbook,
            created_at=now,
            updated_at=now,
        )
        try:
            with self.db.write() as session:
                session.add(row)
                session.flush()
                details: dict[str, Any] = {
                    "incident_id": decision.incident_id,
                    "incident": view.title,
                    "evidence": store.evidence_refs(session, decision.incident_id),
                    "alert_labels": dict(view.labels),
                    "policy": policy.name,
                    "policy_version": policy.version,
                    "mode": policy.mode,
                    "target": decision.target.as_dict(),
                    "params": decision.params,
                    "status": decision.status,
                    "reason": decision.reason,
                    "checks": decision.checks,
                    "diff": plan["diff"] if plan else None,
                }
                audit.record(
                    session,
                    actor=ACTOR,
                    action="policy.decided",
                    target_type="decision",
                    target_id=row.decision_id,
                    details=details,
                )
                store.add_timeline(
                    session,
                    decision.incident_id,
                    TimelineKind.DECISION,
                    ACTOR,
                    f"{policy.name}: {decision.status} ({decision.reason})",
                    {"decision_id": row.decision_id},
                )
                return row.decision_id
        except IntegrityError:  # another replica decided this (incident, policy) first
            return None


def _views(incident: IncidentRow) -> list[IncidentView]:
    """One view per firing alert (newest first), or the incident itself when it has none."""
    firing = [a for a in incident.alerts if a.status == AlertStatus.FIRING]
    labels = [a.labels for a in reversed(firing)] or [incident.labels]
    return [alert_view(incident, alert_labels) for alert_labels in labels]


def alert_view(incident: IncidentRow, labels: dict[str, Any]) -> IncidentView:
    """What policies see of an incident through one of its alerts."""
    severity = labels.get("severity")
    return IncidentView(
        incident_id=incident.incident_id,
        source=incident.source,
        service=incident.service,
        severity=Severity.from_label(str(severity)).value if severity else incident.severity,
        labels={str(k): str(v) for k, v in labels.items()},
        title=incident.title,
    )
