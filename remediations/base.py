"""The contract every remediation follows: plan, execute, verify, rollback.

- `plan()` only reads: the target's state now and the absolute state the action will set,
  with a readable diff. With a cluster, the planned write is also sent with `dryRun=All`, so
  the API server's admission and validation have accepted it before anyone approves it.
- `execute(plan, dry_run)` sets the planned absolute state (never "+1": running it twice
  leaves the same state), re-reading and retrying on 409 conflicts.
- `verify(plan, timeout)` waits, bounded, for the post-condition (e.g. replicas ready).
- `rollback(plan)` restores the planned `before` state.
"""

from __future__ import annotations

import difflib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class Plan:
    action: str
    target: dict[str, str]
    before: dict[str, Any]
    after: dict[str, Any]
    summary: str
    server_dry_run: dict[str, Any] | None = None  # what the API server answered to dryRun=All
    details: dict[str, Any] = field(default_factory=dict)

    def diff(self) -> str:
        """Unified diff of before and after, as YAML-like sorted JSON lines."""
        lines = difflib.unified_diff(
            _lines(self.before), _lines(self.after), "before", "after", lineterm=""
        )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "before": self.before,
            "after": self.after,
            "summary": self.summary,
            "diff": self.diff(),
            "details": self.details,
        }


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    state: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "state": self.state}


class Action(ABC):
    name: ClassVar[str]

    @abstractmethod
    def plan(self) -> Plan: ...

    @abstractmethod
    def execute(self, plan: Plan, *, dry_run: bool) -> Outcome: ...

    @abstractmethod
    def verify(self, plan: Plan, *, timeout_seconds: float) -> Outcome: ...

    @abstractmethod
    def rollback(self, plan: Plan) -> Outcome: ...


def wait_for(
    check: Callable[[], Outcome], *, timeout_seconds: float, interval: float = 0.5
) -> Outcome:
    """Poll `check` until it is ok or the timeout passes; the last outcome says why not."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        outcome = check()
        if outcome.ok or time.monotonic() >= deadline:
            return outcome
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def _lines(state: dict[str, Any]) -> list[str]:
    return json.dumps(state, indent=2, sort_keys=True).splitlines()
