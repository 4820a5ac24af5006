"""The decide step of the policy loop: new and changed incidents against every policy.

Open incidents the intake opened or changed (each change leaves an entry in the policy
outbox, committed with it, so no commit latency can hide one) are matched, alert by alert,
against every enabled policy; each match without a decision yet gets one (`engine.decide`:
guardrails, plan with a server-side dry run, status). The row is unique per (incident,
policy), so two replicas deciding at once store one decision; and one process decides at a
time (a lease in the store, every write fenced by it: see `storage.coordination`), so rates
and cooldowns count every decision, whichever process made it. Every decision
is audited with its inputs (incident, alert labels, policy and version, parameters, plan and
diff, guardrail verdicts) and noted on the incident's timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import remediations
from controlplane.domain.errors import ControlPlaneError, LeaseLostError
from controlplane.domain.maintenance import MODE_ORDER, MaintenanceWindow, covering
from controlplane.domain.models import AlertStatus, DecisionStatus, Severity, TimelineKind
from controlplane.policy.cost import CostModel, Spend, month_start
from controlplane.policy.engine import Builder, Decision, decide
from controlplane.policy.guardrails import IncidentView, PastAction, matches
from controlplane.policy.schema import Policy
from controlplane.policy.state import is_paused
from controlplane.storage import Database, audit, maintenance
from controlplane.storage import decisions as store
from controlplane.storage.coordination import Lease, process_id
from controlplane.storage.models import DecisionRow, IncidentRow, ProposalRow
from remediations import ActionParams, Plan, TargetRef

ACTOR = "policy-engine"
PROPOSAL_WAITING = "waiting"
#: Outbox entries (incidents opened or changed by the intake) read per decide pass.
OUTBOX_BATCH = 1000
#: How often plans waiting for approval are compared with a fresh read of their target.
DRIFT_CHECK = timedelta(seconds=30)
#: How far back decisions count for rates and cooldowns.
LOOKBACK = timedelta(hours=24)
#: The lease under which one process at a time decides.
LEASE = "policy-decide"
log = logging.getLogger(__name__)


class Decider:
    def __init__(
        self,
        db: Database,
        policies: list[Policy],
        build: Builder,
        *,
        global_max_per_hour: int,
        clock: Callable[[], datetime],
        lease_seconds: float,
        budget: Callable[[str], float | None] = lambda slo: None,
        cost: CostModel | None = None,
    ) -> None:
        self.db, self.policies, self.build = db, policies, build
        self.budget = budget
        self.cost = cost
        #: What automated changes added to spend this month, read at the start of each pass.
        self.spend: list[Spend] = []
        self.lease = Lease(db, LEASE, process_id(), lease_seconds, clock)
        self.global_max_per_hour = global_max_per_hour
        self.clock = clock
        self.drift_checked = clock() - DRIFT_CHECK
        #: The maintenance windows open now, read at the start of each pass.
        self.windows: list[MaintenanceWindow] = []

    def planner(self, params: ActionParams) -> Plan:
        return self.build(params).plan()

    def run(self) -> list[int]:
        """Decide on what changed since the last pass; the ids of the stored decisions."""
        if not self.policies:
            return []
        with self.lease.running() as mine:
            if not mine:
                return []  # another process (or loop of this one) decides now
            try:
                self.expire_resolved()
                self.expire_drifted()
                return self.replan() + self._run() + self.proposals()
            except LeaseLostError as exc:  # paused or cut off past the lease: another decides
                log.warning("policy decisions stopped: %s", exc)
                return []

    def expire_resolved(self) -> list[int]:
        """Decisions waiting for approval whose incident resolved become `stale`: what they
        would fix is over, so approving them as they are would act on yesterday's plan."""
        now = self.clock()
        with self.db.read() as session:  # a read first: no write lock taken twice a second
            if not store.any_pending_of_resolved(session):
                return []
        with self.lease.write() as session:
            rows = store.pending_of_resolved(session)
            for row in rows:
                reason = (
                    f"incident #{row.incident_id} resolved before anyone approved this; "
                    "it will not run (a new incident gets a new decision)"
                )
                store.mark_stale(session, row, reason, actor=ACTOR, now=now)
            return [r.decision_id for r in rows]

    def expire_drifted(self) -> list[int]:
        """Every `DRIFT_CHECK`, decisions waiting for approval whose target moved away from
        the state they were planned from (someone scaled by hand, a rollout happened) become
        `stale`: approving them would approve a diff that is no longer true."""
        now = self.clock()
        if now - self.drift_checked < DRIFT_CHECK:
            return []
        self.drift_checked = now
        with self.db.read() as session:
            waiting = [(r.decision_id, r.params, r.plan) for r in store.pending(session)]
        moved = []
        for decision_id, params, stored in waiting:
            if not stored:
                continue
            try:
                action = self.build(remediations.parse(params))
                drift = action.drift(Plan.from_dict(stored), action.plan())
            except ControlPlaneError:
                continue  # cannot read the target now: the executor re-checks before acting
            if drift is None:
                continue
            with self.lease.write() as session:
                row = session.get(DecisionRow, decision_id, with_for_update=True)
                if row is None or row.status != DecisionStatus.PENDING_APPROVAL:
                    continue
                reason = f"the target changed since the plan ({drift}); ask for a new plan"
                store.mark_stale(session, row, reason, actor=ACTOR, now=now)
                moved.append(decision_id)
        return moved

    def replan(self) -> list[int]:
        """Decide again the decisions an operator asked a new plan for (`replanning`): the
        same policy, the incident's firing alerts now, every guardrail, a fresh read."""
        with self.db.read() as session:
            if not store.any_replanning(session):
                return []
        now = self.clock()
        with self.db.read() as session:
            rows = store.replanning(session)
            asked = [(r.decision_id, r.policy, r.incident_id) for r in rows]
            still_open = store.open_incidents(session, {incident for _, _, incident in asked})
            incidents = {i.incident_id: _views(i) for i in still_open}
            history = self._history(session, now)
            paused = is_paused(session)
            self.windows = maintenance.open_now(session, now)
            self.spend = _spend(session, now)
        done = []
        policies = {p.name: p for p in self.policies if p.enabled}
        for decision_id, name, incident_id in asked:
            policy = policies.get(name)
            views = incidents.get(incident_id, [])
            view = next((v for v in views if policy and matches(policy, v)), None)
            if policy is None or view is None:
                why = (
                    f"policy {name!r} is not loaded (or disabled) any more"
                    if policy is None
                    else f"no firing alert of incident #{incident_id} matches {name!r} any more"
                )
                self._not_replanned(decision_id, f"{why}; nothing was planned", now)
                continue
            decision = self._decide(policy, view, history, now, paused)
            if self._replanned(decision_id, decision, view, now):
                done.append(decision_id)
        return done

    def _decide(
        self,
        policy: Policy,
        view: IncidentView,
        history: list[PastAction],
        now: datetime,
        paused: bool,
        at_most: str | None = None,
    ) -> Decision:
        """Decide, in the mode the maintenance window covering the incident allows, if any."""
        capping = [
            w
            for w in covering(self.windows, view.service, view.namespace, now)
            if w.automation is not None
        ]
        window = min(capping, key=lambda w: MODE_ORDER.index(w.cap("auto")), default=None)
        rule = policy.guardrails.min_error_budget
        budgets = {rule.slo: self._budget_left(rule.slo)} if rule else None
        return decide(
            policy,
            view,
            history,
            now,
            paused=paused,
            global_max_per_hour=self.global_max_per_hour,
            planner=self.planner,
            window=window,
            at_most=at_most,
            budgets=budgets,
            cost=self.cost,
            spend=self.spend,
        )

    def _budget_left(self, slo: str) -> float | None:
        """The SLO's error budget left, None when it cannot be told (Prometheus down)."""
        try:
            return self.budget(slo)
        except ControlPlaneError as exc:
            log.warning("error budget of SLO %s cannot be read: %s", slo, exc)
            return None

    def _history(self, session: Session, now: datetime) -> list[PastAction]:
        return [
            PastAction(policy, target, at)
            for policy, target, at in store.acting_since(session, now - LOOKBACK)
        ]

    def _run(self) -> list[int]:
        """Decide on the incidents the intake put in the outbox, then consume those entries
        (a pass that fails consumes nothing: its incidents are decided on the next one)."""
        now = self.clock()
        with self.db.read() as session:
            waiting = store.outbox(session, limit=OUTBOX_BATCH)
            if not waiting:  # the common case, twice a second: nothing more to read
                return []
            incidents = store.open_incidents(session, {i for _, i in waiting})
            decided = store.decided(session, [i.incident_id for i in incidents])
            history = self._history(session, now)
            paused = is_paused(session)
            self.windows = maintenance.open_now(session, now)
            self.spend = _spend(session, now)
            views = [(i.incident_id, _views(i)) for i in incidents]
        stored = []
        for incident_id, alert_views in views:
            for policy in self.policies:
                if policy.on_request or not policy.enabled or (incident_id, policy.name) in decided:
                    continue
                view = next((v for v in alert_views if matches(policy, v)), None)
                if view is None:
                    continue
                decision = self._decide(policy, view, history, now, paused)
                decided.add((incident_id, policy.name))
                decision_id = self._store(decision, view, now)
                if decision_id is not None:
                    stored.append(decision_id)
                    if decision.changes_something:
                        history.append(PastAction(policy.name, decision.target.key, now))
        with self.lease.write() as session:
            store.consume(session, [entry for entry, _ in waiting])
        return stored

    def proposals(self) -> list[int]:
        """Plan what agents proposed (the MCP server's `propose_action`): each with the policy
        it names, for an incident that policy matches, with every guardrail, and at most in
        approval mode, so a person decides. A proposal the loop cannot plan is refused, why
        recorded. The ids of the stored decisions."""
        now = self.clock()
        with self.db.read() as session:
            waiting = [
                (p.proposal_id, p.incident_id, p.policy, p.proposed_by, p.reason)
                for p in session.scalars(
                    select(ProposalRow)
                    .where(ProposalRow.status == PROPOSAL_WAITING)
                    .order_by(ProposalRow.proposal_id)
                )
            ]
            if not waiting:
                return []
            still_open = store.open_incidents(session, {w[1] for w in waiting})
            views = {i.incident_id: _views(i) for i in still_open}
            decided = store.decided(session, list(views))
            history = self._history(session, now)
            paused = is_paused(session)
            self.windows = maintenance.open_now(session, now)
            self.spend = _spend(session, now)
        policies = {p.name: p for p in self.policies if p.enabled}
        stored = []
        for proposal_id, incident_id, name, agent, reason in waiting:
            policy = policies.get(name)
            view = next(
                (v for v in views.get(incident_id, []) if policy and matches(policy, v)), None
            )
            why, decision_id = _unplannable(policy, name, incident_id, views, decided, view), None
            if why is None:
                assert policy is not None
                assert view is not None
                decision = self._decide(policy, view, history, now, paused, at_most="approval")
                decision.reason = f"proposed by {agent}: {reason}; {decision.reason}"[:2000]
                decision_id = self._store(decision, view, now)
                if decision_id is None:
                    why = f"policy {name!r} was decided for incident #{incident_id} meanwhile"
                else:
                    stored.append(decision_id)
                    decided.add((incident_id, name))
            self._settle_proposal(proposal_id, decision_id, why, now)
        return stored

    def _settle_proposal(
        self, proposal_id: int, decision_id: int | None, why: str | None, now: datetime
    ) -> None:
        with self.lease.write() as session:
            row = session.get(ProposalRow, proposal_id, with_for_update=True)
            if row is None or row.status != PROPOSAL_WAITING:
                return
            row.status = "refused" if why else "planned"
            row.decision_id, row.detail, row.updated_at = decision_id, why, now
            audit.record(
                session,
                actor=ACTOR,
                action=f"proposal.{row.status}",
                target_type="proposal",
                target_id=proposal_id,
                details={
                    "incident_id": row.incident_id,
                    "policy": row.policy,
                    "proposed_by": row.proposed_by,
                    "decision_id": decision_id,
                    "why": why,
                },
            )

    def _store(self, decision: Decision, view: IncidentView, now: datetime) -> int | None:
        row = DecisionRow(**_fields(decision), created_at=now, updated_at=now)
        try:
            with self.lease.write() as session:
                session.add(row)
                session.flush()
                self._record(session, row.decision_id, decision, view, "policy.decided")
                return row.decision_id
        except IntegrityError:  # another replica decided this (incident, policy) first
            return None

    def _replanned(
        self, decision_id: int, decision: Decision, view: IncidentView, now: datetime
    ) -> bool:
        """The new plan replaces the stale one on the same row (one decision per incident and
        policy); the old plan stays in the audit log."""
        with self.lease.write() as session:
            row = session.get(DecisionRow, decision_id, with_for_update=True)
            if row is None or row.status != DecisionStatus.REPLANNING:
                return False
            previous = (row.plan or {}).get("diff")
            for name, value in {**_fields(decision), **_CLEARED}.items():
                setattr(row, name, value)
            row.created_at, row.updated_at = now, now
            self._record(
                session, decision_id, decision, view, "policy.replanned", previous_diff=previous
            )
            return True

    def _not_replanned(self, decision_id: int, reason: str, now: datetime) -> None:
        with self.lease.write() as session:
            row = session.get(DecisionRow, decision_id, with_for_update=True)
            if row is not None and row.status == DecisionStatus.REPLANNING:
                store.mark_stale(session, row, reason, actor=ACTOR, now=now)

    def _record(
        self,
        session: Session,
        decision_id: int,
        decision: Decision,
        view: IncidentView,
        action: str,
        **extra: Any,
    ) -> None:
        """The decision's audit row, with every input it was made from, and its timeline
        entry on the incident."""
        policy = decision.policy
        plan = _plan(decision)
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
            **extra,
        }
        audit.record(
            session,
            actor=ACTOR,
            action=action,
            target_type="decision",
            target_id=decision_id,
            details=details,
        )
        verb = "planned again: " if action == "policy.replanned" else ""
        store.add_timeline(
            session,
            decision.incident_id,
            TimelineKind.DECISION,
            ACTOR,
            f"{policy.name}: {verb}{decision.status} ({decision.reason})",
            {"decision_id": decision_id},
        )


#: What a new plan clears from the attempt before it (the audit log keeps it).
_CLEARED: dict[str, Any] = dict.fromkeys(
    [
        "reviewed_by",
        "reviewed_at",
        "review_comment",
        "lease_owner",
        "lease_until",
        "started_at",
        "finished_at",
        "outcome",
    ]
)


def _plan(decision: Decision) -> dict[str, Any] | None:
    """The plan as stored: what it changes, the dry-run's answer, how it will be verified."""
    if decision.plan is None:
        return None
    policy = decision.policy
    return {
        **decision.plan.as_dict(),
        "server_dry_run": decision.plan.server_dry_run,
        "verify": policy.verify.model_dump(),
        "rollback_on_failure": policy.rollback_on_failure,
        "cost": None if decision.cost_per_hour is None else {"per_hour": decision.cost_per_hour},
    }


def _spend(session: Session, now: datetime) -> list[Spend]:
    return [
        Spend(TargetRef(t["kind"], t["name"], t.get("namespace")), per_hour, at)
        for t, at, per_hour in store.spend_since(session, month_start(now))
    ]


def _unplannable(
    policy: Policy | None,
    name: str,
    incident_id: int,
    views: dict[int, list[IncidentView]],
    decided: set[tuple[int, str]],
    view: IncidentView | None,
) -> str | None:
    """Why a proposal cannot be planned, or None."""
    if policy is None:
        return f"no enabled policy is named {name!r}"
    if incident_id not in views:
        return f"incident #{incident_id} is not open"
    if (incident_id, name) in decided:
        return f"policy {name!r} already decided for incident #{incident_id} (see its decisions)"
    if view is None:
        return f"policy {name!r} does not match incident #{incident_id} (its match rules)"
    return None


def _fields(decision: Decision) -> dict[str, Any]:
    """A decision's columns in the store."""
    policy = decision.policy
    return {
        "incident_id": decision.incident_id,
        "policy": policy.name,
        "policy_version": policy.version,
        "mode": decision.mode,
        "action": policy.action.type,
        "target": decision.target.key,
        "params": decision.params,
        "status": decision.status,
        "reason": decision.reason,
        "checks": decision.checks,
        "plan": _plan(decision),
        "runbook": policy.runbook,
    }


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
