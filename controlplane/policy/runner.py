"""The policy loop: decide on new and changed incidents, execute approved decisions once.

Each cycle (every `automation.interval_seconds`, in the API process):

1. **Decide.** Open incidents updated since the last cycle are matched, alert by alert,
   against every enabled policy; each match without a decision yet gets one (`engine.decide`:
   guardrails, plan with a server-side dry run, status). The row is unique per (incident,
   policy), so two replicas deciding at once store one decision. Every decision is audited
   with its inputs (incident, alert labels, policy and version, parameters, plan and diff,
   guardrail verdicts) and noted on the incident's timeline.
2. **Execute.** Approved decisions are claimed with a conditional update (`approved` ->
   `executing`, with a lease); only the replica whose update hit the row runs it. The action
   sets the planned state, verification waits for readiness and the policy's PromQL, and a
   failed verification rolls back when the policy says so. Each step is audited.
3. **Hand over.** An execution whose lease expired (a crash mid-run) becomes
   `needs_attention`: a human looks; it is never re-run blindly.

While automation is paused (the kill switch), approved decisions are cancelled instead of run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

import remediations
from controlplane import audit
from controlplane.collectors.prometheus import PrometheusCollector
from controlplane.config import Settings
from controlplane.domain.errors import ControlPlaneError, PermanentError
from controlplane.domain.models import AlertStatus, IncidentStatus, Severity, TimelineKind
from controlplane.loops import every
from controlplane.policy.engine import Decision, decide
from controlplane.policy.guardrails import IncidentView, PastAction, matches
from controlplane.policy.schema import Policy, load_policies
from controlplane.policy.state import is_paused
from controlplane.storage import Database
from controlplane.storage.models import (
    DecisionRow,
    EvidenceRow,
    IncidentRow,
    TimelineEntryRow,
)
from remediations import Kube
from remediations.base import Outcome, Plan

log = logging.getLogger(__name__)
ACTOR = "policy-engine"
#: Statuses that count against rates and cooldowns.
ACTING = (
    "pending_approval",
    "approved",
    "executing",
    "succeeded",
    "failed",
    "rolled_back",
    "needs_attention",
)
LOOKBACK = timedelta(hours=24)
#: Added to a decision's verification timeout for its execution lease (the write itself).
LEASE_MARGIN_SECONDS = 120
EVALUATION_LOCK = 0x41494F5001  # "AIOP" + 1: the policy evaluation advisory lock

PromQLCheck = Callable[[str], bool]


@dataclass
class CycleReport:
    decided: list[int] = field(default_factory=list)
    executed: list[int] = field(default_factory=list)
    handed_over: list[int] = field(default_factory=list)


class PolicyRunner:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        policies: list[Policy] | None = None,
        kube: Callable[[], Kube] | None = None,
        promql: PromQLCheck | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.automation
        self.db = db
        self.clock = clock
        if policies is None:
            folder = self.config.policies_dir
            policies = load_policies(folder) if folder is not None else []
        if self.config.dry_run_only:
            policies = [p.model_copy(update={"mode": "dry_run"}) for p in policies]
        self.policies = policies
        self._kube = kube
        self._connection: Kube | None = None
        self.promql = promql or _prometheus_check(settings)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.watermark = clock() - timedelta(hours=1)

    # -- the loop -----------------------------------------------------------------------------
    async def run_forever(self, stop: asyncio.Event) -> None:
        await every(
            self.config.interval_seconds, lambda: asyncio.to_thread(self.cycle), stop, "policy"
        )

    def cycle(self) -> CycleReport:
        report = CycleReport()
        report.decided = self.evaluate()
        report.executed = self.execute_approved()
        report.handed_over = self.expire_leases()
        return report

    # -- 1. decide -------------------------------------------------------------------------
    def evaluate(self) -> list[int]:
        """Decide on new and changed incidents. One replica at a time (an advisory lock), so
        that rates and cooldowns count every decision, whichever replica made it."""
        if not self.policies:
            return []
        with self.db.exclusive(EVALUATION_LOCK) as mine:
            return self._evaluate() if mine else []

    def _evaluate(self) -> list[int]:
        now = self.clock()
        since, self.watermark = self.watermark - timedelta(seconds=5), now
        with self.db.read() as session:
            incidents = session.scalars(
                select(IncidentRow)
                .where(
                    IncidentRow.status != IncidentStatus.RESOLVED, IncidentRow.updated_at >= since
                )
                .options(selectinload(IncidentRow.alerts))
                .order_by(IncidentRow.incident_id)
            ).all()
            if not incidents:  # the common case, twice a second: nothing more to read
                return []
            ids = [i.incident_id for i in incidents]
            rows = session.execute(
                select(DecisionRow.incident_id, DecisionRow.policy).where(
                    DecisionRow.incident_id.in_(ids)
                )
            )
            decided: set[tuple[int, str]] = {(i, p) for i, p in rows}
            history = self._history(session, now)
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
                    global_max_per_hour=self.config.max_actions_per_hour,
                    planner=self._plan,
                )
                decided.add((incident_id, policy.name))
                decision_id = self._store(decision, view, now)
                if decision_id is not None:
                    stored.append(decision_id)
                    if decision.changes_something:
                        history.append(PastAction(policy.name, decision.target, now))
        return stored

    def _plan(self, params: dict[str, Any]) -> Plan:
        return remediations.build(params, self.kube).plan()

    def kube(self) -> Kube:
        if self._connection is None:
            self._connection = self._kube() if self._kube else connect(self.settings)
        return self._connection

    def _history(self, session: Session, now: datetime) -> list[PastAction]:
        rows = session.execute(
            select(DecisionRow.policy, DecisionRow.target, DecisionRow.created_at).where(
                DecisionRow.status.in_(ACTING), DecisionRow.created_at >= now - LOOKBACK
            )
        )
        return [PastAction(policy, target, at) for policy, target, at in rows]

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
            target=decision.target,
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
                evidence = session.execute(
                    select(EvidenceRow.evidence_id, EvidenceRow.kind, EvidenceRow.signal).where(
                        EvidenceRow.incident_id == decision.incident_id
                    )
                )
                details = {
                    "incident_id": decision.incident_id,
                    "incident": view.title,
                    "evidence": [{"id": i, "kind": k, "signal": s} for i, k, s in evidence],
                    "alert_labels": dict(view.labels),
                    "policy": policy.name,
                    "policy_version": policy.version,
                    "mode": policy.mode,
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
                _timeline(
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

    # -- 2. execute ------------------------------------------------------------------------
    def execute_approved(self) -> list[int]:
        with self.db.read() as session:
            ids = session.scalars(
                select(DecisionRow.decision_id)
                .where(DecisionRow.status == "approved")
                .order_by(DecisionRow.decision_id)
            ).all()
        return [i for i in ids if self.execute(i)]

    def execute(self, decision_id: int) -> bool:
        """Run one approved decision if this runner wins the claim; True when it ran."""
        now = self.clock()
        with self.db.write() as session:
            result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                update(DecisionRow)
                .where(DecisionRow.decision_id == decision_id, DecisionRow.status == "approved")
                .values(
                    status="executing",
                    lease_owner=self.owner,
                    lease_until=now + timedelta(seconds=self.config.lease_seconds),
                    started_at=now,
                    updated_at=now,
                )
            )
            if not result.rowcount:  # another replica claimed it first
                return False
            row = session.get(DecisionRow, decision_id)
            assert row is not None
            if is_paused(session):
                self._finish_row(
                    session, row, "cancelled", "automation was paused before it ran", {}
                )
                return True
            params, stored = dict(row.params), dict(row.plan or {})
            # The lease outlasts the longest this run can take (the write, readiness and then
            # PromQL, each waited on up to the timeout), so no replica hands over a live run.
            verify_timeout = float((stored.get("verify") or {}).get("timeout_seconds", 300))
            longest = max(self.config.lease_seconds, 2 * verify_timeout + LEASE_MARGIN_SECONDS)
            row.lease_until = now + timedelta(seconds=longest)
        status, reason, outcome = self._run(params, stored)
        with self.db.write() as session:
            row = session.get(DecisionRow, decision_id)
            assert row is not None
            self._finish_row(session, row, status, reason, outcome)
        return True

    def _run(
        self, params: dict[str, Any], stored: dict[str, Any]
    ) -> tuple[str, str, dict[str, Any]]:
        """Execute, verify, maybe roll back. Returns (status, reason, outcome per step)."""
        plan = Plan(
            stored["action"],
            stored["target"],
            stored["before"],
            stored["after"],
            stored["summary"],
            details=stored.get("details", {}),
        )
        verify = stored.get("verify") or {}
        steps: dict[str, Any] = {}
        try:
            action = remediations.build(params, self.kube)
            steps["execute"] = action.execute(plan, dry_run=False).as_dict()
        except ControlPlaneError as exc:
            return "failed", f"execution failed: {exc}", steps
        try:
            checked = action.verify(plan, timeout_seconds=verify.get("timeout_seconds", 300))
            if checked.ok and verify.get("promql"):
                checked = self._promql(verify["promql"], verify.get("timeout_seconds", 300))
        except ControlPlaneError as exc:
            checked = Outcome(False, f"verification could not run: {exc}")
        steps["verify"] = checked.as_dict()
        if checked.ok:
            return "succeeded", f"verified: {checked.message}", steps
        if not stored.get("rollback_on_failure", True):
            return "failed", f"verification failed: {checked.message}", steps
        try:
            steps["rollback"] = action.rollback(plan).as_dict()
        except ControlPlaneError as exc:
            return "needs_attention", f"verification failed and rollback failed: {exc}", steps
        return "rolled_back", f"verification failed ({checked.message}); rolled back", steps

    def _promql(self, query: str, timeout: float) -> Outcome:
        deadline = self.clock() + timedelta(seconds=timeout)
        while True:
            if self.promql(query):
                return Outcome(True, f"PromQL holds: {query}")
            if self.clock() >= deadline:
                return Outcome(False, f"PromQL did not hold within {timeout:g} s: {query}")
            time.sleep(min(2.0, timeout))

    def _finish_row(
        self, session: Session, row: DecisionRow, status: str, reason: str, outcome: dict[str, Any]
    ) -> None:
        now = self.clock()
        row.status, row.reason, row.outcome = status, reason, outcome
        row.finished_at, row.updated_at = now, now
        row.lease_owner, row.lease_until = None, None
        for step, result in outcome.items():
            audit.record(
                session,
                actor=ACTOR,
                action=f"action.{step}",
                target_type="decision",
                target_id=row.decision_id,
                details={"policy": row.policy, **result},
            )
        audit.record(
            session,
            actor=ACTOR,
            action=f"action.{status}",
            target_type="decision",
            target_id=row.decision_id,
            details={"policy": row.policy, "target": row.target, "reason": reason},
        )
        _timeline(
            session,
            row.incident_id,
            TimelineKind.ACTION,
            ACTOR,
            f"{row.policy}: {status} ({reason})",
            {"decision_id": row.decision_id},
        )

    # -- 3. hand over ----------------------------------------------------------------------
    def expire_leases(self) -> list[int]:
        now = self.clock()
        expired = select(DecisionRow).where(
            DecisionRow.status == "executing", DecisionRow.lease_until < now
        )
        with self.db.read() as session:  # a read first: no write lock taken twice a second
            if session.scalar(select(expired.exists())) is not True:
                return []
        with self.db.write() as session:
            rows = session.scalars(expired).all()
            for row in rows:
                self._finish_row(
                    session,
                    row,
                    "needs_attention",
                    f"execution by {row.lease_owner} did not finish before its lease expired; "
                    "check the target's state by hand (it is never re-run automatically)",
                    dict(row.outcome or {}),
                )
            return [r.decision_id for r in rows]


def shipped_policies() -> Path:
    """The example policies shipped in runbooks/policies (used by the demo)."""
    return Path(str(files("runbooks").joinpath("policies")))


def connect(settings: Settings) -> Kube:
    """The cluster from settings, else the kubeconfig; a clear error when there is neither."""
    k8s = settings.automation.kubernetes
    if k8s.host:
        token = k8s.token.get_secret_value() if k8s.token else None
        return Kube(
            host=k8s.host,
            token=token,
            verify_tls=k8s.verify_tls,
            timeout_seconds=k8s.timeout_seconds,
        )
    kubeconfig = k8s.kubeconfig or os.environ.get("KUBECONFIG")
    default = os.path.expanduser("~/.kube/config")
    if kubeconfig is None and not os.path.exists(default):
        raise PermanentError(
            "no Kubernetes cluster configured (automation.kubernetes.host, "
            "automation.kubernetes.kubeconfig or KUBECONFIG)"
        )
    return Kube(
        kubeconfig=str(kubeconfig) if kubeconfig else None,
        context=k8s.context,
        verify_tls=k8s.verify_tls,
        timeout_seconds=k8s.timeout_seconds,
    )


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


def _timeline(
    session: Session,
    incident_id: int,
    kind: TimelineKind,
    actor: str,
    message: str,
    data: dict[str, Any],
) -> None:
    session.add(
        TimelineEntryRow(
            incident_id=incident_id, kind=kind, actor=actor, message=message[:2000], data=data
        )
    )


def _prometheus_check(settings: Settings) -> PromQLCheck:
    """An instant query that holds when it returns a non-empty vector."""
    if not settings.prometheus.url:

        def unconfigured(query: str) -> bool:
            raise PermanentError(f"verify.promql {query!r} needs prometheus.url")

        return unconfigured
    collector = PrometheusCollector(settings.prometheus)
    return lambda query: bool(collector.instant(query))
