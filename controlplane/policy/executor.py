"""The execute step of the policy loop: claim, run, verify, roll back, hand over.

- **Claim.** An approved decision is claimed with a conditional update (`approved` ->
  `executing`, with a lease); only the replica whose update hit the row runs it, so nothing
  acts twice for one decision. While automation is paused it is cancelled instead.
- **Run.** The action (built through the registry from the stored params) first re-plans
  from a fresh read: if the target moved away from the state the plan was made from, the
  decision is `stale` and nothing is changed. Otherwise it sets the planned state;
  verification waits for the action's post-condition and then the policy's PromQL; a failed
  verification rolls back when the policy says so. Each step is audited.
- **Hand over.** An execution whose lease expired (a crash mid-run) becomes
  `needs_attention`: a human looks; it is never re-run blindly.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

import remediations
from controlplane.domain.errors import ControlPlaneError
from controlplane.domain.models import DecisionStatus
from controlplane.policy.decider import ACTOR
from controlplane.policy.engine import Builder
from controlplane.policy.state import is_paused
from controlplane.storage import Database
from controlplane.storage import decisions as store
from controlplane.storage.models import DecisionRow
from remediations import Outcome, Plan

#: Holds when the PromQL query returns a non-empty result.
PromQLCheck = Callable[[str], bool]
#: Added to a decision's verification timeout for its execution lease (the write itself).
LEASE_MARGIN_SECONDS = 120
DEFAULT_VERIFY_TIMEOUT = 300.0


class Executor:
    def __init__(
        self,
        db: Database,
        build: Builder,
        promql: PromQLCheck,
        *,
        owner: str,
        lease_seconds: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.db, self.build, self.promql = db, build, promql
        self.owner, self.lease_seconds, self.clock = owner, lease_seconds, clock

    def execute_approved(self) -> list[int]:
        with self.db.read() as session:
            ids = store.approved_ids(session)
        return [i for i in ids if self.execute(i)]

    def execute(self, decision_id: int) -> bool:
        """Run one approved decision if this runner wins the claim; True when it ran."""
        now = self.clock()
        with self.db.write() as session:
            until = now + timedelta(seconds=self.lease_seconds)
            if not store.claim(session, decision_id, self.owner, until, now):
                return False  # another replica claimed it first
            row = session.get(DecisionRow, decision_id)
            assert row is not None
            if is_paused(session):
                reason = "automation was paused before it ran"
                self._finish(session, row, DecisionStatus.CANCELLED, reason, {})
                return True
            params, stored = dict(row.params), dict(row.plan or {})
            # The lease outlasts the longest this run can take, so no replica hands over a
            # live run.
            longest = max(self.lease_seconds, _longest_run(stored) + LEASE_MARGIN_SECONDS)
            row.lease_until = now + timedelta(seconds=longest)
        status, reason, outcome = self._run(decision_id, params, stored)
        with self.db.write() as session:
            row = session.get(DecisionRow, decision_id)
            assert row is not None
            self._finish(session, row, status, reason, outcome)
        return True

    def _run(
        self, decision_id: int, params: dict[str, Any], stored: dict[str, Any]
    ) -> tuple[DecisionStatus, str, dict[str, Any]]:
        """Execute, verify, maybe roll back. Returns (status, reason, outcome per step); each
        step's outcome records when it started, and the row's reason says which step is
        running while it runs."""
        plan = Plan.from_dict(stored)
        verify = stored.get("verify") or {}
        timeout, settle = _verify_timeout(stored), _settle(stored)
        promql = verify.get("promql")
        steps: dict[str, Any] = {}
        stages = plan.details.get("stages") or []

        def step(name: str, doing: str, run: Callable[[], Outcome]) -> Outcome:
            started = self._progress(decision_id, doing)
            outcome = run()
            steps[name] = {**outcome.as_dict(), "started_at": started.isoformat()}
            return outcome

        try:
            action = self.build(remediations.parse(params))
            drift = action.drift(plan, action.plan())  # a fresh read: is the plan still true?
            if drift is not None:
                reason = f"the target changed since the plan ({drift}); nothing was changed"
                return DecisionStatus.STALE, reason, steps
            precheck = plan.details.get("precheck_promql")
            if precheck:  # a health check the action asks for before it acts (failover)
                held = step(
                    "precheck", f"checking: PromQL {precheck}", lambda: self._holds(precheck)
                )
                if not held.ok:
                    return DecisionStatus.FAILED, f"{held.message}; nothing was changed", steps
            if stages:  # a gradual change: every step but the last, each checked
                stopped = self._steps(action, plan, stages, promql, (settle, timeout), step)
                if stopped is not None:
                    return (*stopped, steps)
            step("execute", f"acting: {plan.summary}", lambda: action.execute(plan, dry_run=False))
        except ControlPlaneError as exc:
            return DecisionStatus.FAILED, f"execution failed: {exc}", steps
        budget = f"budget {timeout:g} s"

        def check() -> Outcome:
            try:
                checked = action.verify(plan, timeout_seconds=timeout)
                if checked.ok and promql:
                    self._progress(decision_id, f"verifying: PromQL {promql} ({budget})")
                    checked = self._promql(promql, settle, timeout)
            except ControlPlaneError as exc:
                checked = Outcome(False, f"verification could not run: {exc}")
            return checked

        checked = step("verify", f"verifying: waiting for the target to be ready ({budget})", check)
        if checked.ok:
            return DecisionStatus.SUCCEEDED, f"verified: {checked.message}", steps
        if not stored.get("rollback_on_failure", True):
            return DecisionStatus.FAILED, f"verification failed: {checked.message}", steps
        try:
            doing = f"rolling back: verification failed ({checked.message})"
            if len(stages) > 1:  # back to the last step that held
                last_good = stages[-2]
                step("rollback", doing, lambda: action.apply_stage(last_good))  # type: ignore[attr-defined]
            else:
                step("rollback", doing, lambda: action.rollback(plan))
        except ControlPlaneError as exc:
            reason = f"verification failed and rollback failed: {exc}"
            return DecisionStatus.NEEDS_ATTENTION, reason, steps
        back = f"to step {len(stages) - 1} ({_shown(stages[-2])})" if len(stages) > 1 else ""
        reason = f"verification failed ({checked.message}); rolled back {back}".rstrip()
        return DecisionStatus.ROLLED_BACK, reason, steps

    def _progress(self, decision_id: int, doing: str) -> datetime:
        """Say on the row which step runs now (the console shows it); when it started."""
        now = self.clock()
        with self.db.write() as session:
            row = session.get(DecisionRow, decision_id)
            if row is not None:
                row.reason, row.updated_at = doing[:2000], now
        return now

    def _steps(
        self,
        action: Any,
        plan: Plan,
        stages: list[Any],
        promql: str | None,
        waits: tuple[float, float],
        step: Callable[[str, str, Callable[[], Outcome]], Outcome],
    ) -> tuple[DecisionStatus, str] | None:
        """Apply each step but the last and check the PromQL after it. A step that fails
        its check is undone to the last one that held (the original state before the first);
        the status and reason then, or None when every step held (the last is `execute`)."""
        for number, stage in enumerate(stages[:-1], 1):
            step(
                f"step {number}",
                f"step {number} of {len(stages)}: {_shown(stage)}",
                functools.partial(action.apply_stage, stage),
            )
            if not promql:
                continue
            doing = f"checking step {number}: PromQL {promql}"
            held = step(f"check {number}", doing, functools.partial(self._promql, promql, *waits))
            if held.ok:
                continue
            if number == 1:
                step("rollback", "rolling back: step 1 failed", lambda: action.rollback(plan))
                back = "the original state"
            else:
                good = stages[number - 2]
                undo = functools.partial(action.apply_stage, good)
                step("rollback", f"rolling back to step {number - 1}", undo)
                back = f"step {number - 1} ({_shown(good)})"
            return (
                DecisionStatus.ROLLED_BACK,
                f"step {number} failed ({held.message}); back to {back}",
            )
        return None

    def _holds(self, query: str) -> Outcome:
        """One check of a PromQL condition, now."""
        if self.promql(query):
            return Outcome(True, f"PromQL holds: {query}")
        return Outcome(False, f"health check failed, PromQL does not hold: {query}")

    def _promql(self, query: str, settle: float, timeout: float) -> Outcome:
        """Whether the PromQL holds within `timeout`, checked from `settle` seconds on."""
        time.sleep(settle)
        deadline = self.clock() + timedelta(seconds=timeout)
        while True:
            if self.promql(query):
                return Outcome(True, f"PromQL holds: {query}")
            if self.clock() >= deadline:
                return Outcome(False, f"PromQL did not hold within {timeout:g} s: {query}")
            time.sleep(min(2.0, timeout))

    def expire_leases(self) -> list[int]:
        now = self.clock()
        with self.db.read() as session:  # a read first: no write lock taken twice a second
            if not store.any_lease_expired(session, now):
                return []
        with self.db.write() as session:
            rows = store.lease_expired(session, now)
            for row in rows:
                self._finish(
                    session,
                    row,
                    DecisionStatus.NEEDS_ATTENTION,
                    f"execution by {row.lease_owner} did not finish before its lease expired; "
                    "check the target's state by hand (it is never re-run automatically)",
                    dict(row.outcome or {}),
                )
            return [r.decision_id for r in rows]

    def _finish(
        self,
        session: Session,
        row: DecisionRow,
        status: DecisionStatus,
        reason: str,
        outcome: dict[str, Any],
    ) -> None:
        store.finish(session, row, status, reason, outcome, actor=ACTOR, now=self.clock())


def _verify_timeout(stored: dict[str, Any]) -> float:
    return float((stored.get("verify") or {}).get("timeout_seconds", DEFAULT_VERIFY_TIMEOUT))


def _shown(stage: Any) -> str:
    """A step of a gradual change as people read it: `a 50, b 50`, not a dict."""
    if isinstance(stage, dict):
        return ", ".join(f"{name} {value}" for name, value in stage.items())
    return str(stage)


def _settle(stored: dict[str, Any]) -> float:
    return float((stored.get("verify") or {}).get("settle_seconds", 0))


def _longest_run(stored: dict[str, Any]) -> float:
    """The longest a run can wait: for the target to be ready, then for the PromQL after each
    step of a gradual change (one step otherwise), each check after its settle time."""
    timeout = _verify_timeout(stored)
    checks = max(1, len((stored.get("details") or {}).get("stages") or []))
    return timeout + checks * (_settle(stored) + timeout)
