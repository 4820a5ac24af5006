"""The contract every remediation action follows, and the values it exchanges.

An action class declares everything the rest of the system needs to know about it:

- `name`: the stable id used in policy YAML, the API and audit rows;
- `Params`: its parameters, a pydantic model (`extra="forbid"`) defined next to it, whose
  `type` field is the name. The policy schema builds its action union from these models;
- `target(params)`: the object it changes (`TargetRef`), known before any plan exists, so
  cooldowns, audit rows and locks name the real thing;
- `impact(params, plan)`: the quantities a planned change moves (`Impact`), read by guardrails;
- `reversible`: whether `rollback` can put back the `before` state.

Its four steps:

- `plan()` only reads: the target's state now and the absolute state the action will set,
  with a readable diff. With a cluster, the planned write is also sent with `dryRun=All`, so
  the API server's admission and validation have accepted it before anyone approves it.
- `execute(plan, dry_run)` sets the planned absolute state (never "+1": running it twice
  leaves the same state), re-reading and retrying on 409 conflicts.
- `verify(plan, timeout)` waits, bounded, for the post-condition (e.g. replicas ready).
- `rollback(plan)` restores the planned `before` state (or, for an action that cannot be
  undone, says so and changes nothing).
- `drift(planned, fresh)`: has the target moved away from the state the plan was made from?
  The executor asks it on a fresh plan before acting, and never acts on a stale plan.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from remediations._kube import Kube

#: Connects to the cluster on first use; actions that need no cluster never call it.
KubeFactory = Callable[[], "Kube"]


class ActionParams(BaseModel):
    """Base of every action's parameters: strict and frozen. Each subclass declares
    `type: Literal["<action name>"]`, the discriminator of the policy schema's union."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str


P = TypeVar("P", bound=ActionParams)


@dataclass(frozen=True)
class TargetRef:
    """The object an action changes: what cooldowns, locks and audit rows are keyed by."""

    kind: str
    name: str
    namespace: str | None = None

    @property
    def key(self) -> str:
        """`kind/namespace/name` in lower-case kind (or `kind/name` outside a namespace)."""
        parts = [self.kind.lower(), self.namespace, self.name]
        return "/".join(p for p in parts if p)

    def as_dict(self) -> dict[str, str]:
        out = {"kind": self.kind, "name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        return out


#: The impact quantity the blast-radius guardrail reads.
REPLICAS = "replicas"


@dataclass(frozen=True)
class Impact:
    """What a planned change moves, in quantities guardrails limit: each name maps to its
    (before, after) values. Replicas today; a cost or node-count guardrail reads its own
    quantity tomorrow without the engine learning a new action."""

    changes: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def of(self, quantity: str) -> tuple[float, float] | None:
        return self.changes.get(quantity)


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

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Plan:
        """A plan as `as_dict` stored it (the diff is derived, so it is not read back)."""
        return cls(
            stored["action"],
            dict(stored["target"]),
            dict(stored["before"]),
            dict(stored["after"]),
            stored["summary"],
            stored.get("server_dry_run"),
            dict(stored.get("details") or {}),
        )


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    state: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "state": self.state}


class Action(ABC, Generic[P]):
    """One remediation, built from validated params; see the module docstring."""

    name: ClassVar[str]
    Params: ClassVar[type[ActionParams]]
    reversible: ClassVar[bool] = True

    def __init__(self, params: P, kube: KubeFactory) -> None:
        self.params = params
        self._kube = kube

    @property
    def kube(self) -> Kube:
        """The cluster connection, made on first use."""
        return self._kube()

    @classmethod
    @abstractmethod
    def target(cls, params: P) -> TargetRef: ...

    @classmethod
    def impact(cls, params: P, plan: Plan) -> Impact:
        """What the plan moves that guardrails limit; nothing by default."""
        return Impact()

    def drift(self, planned: Plan, fresh: Plan) -> str | None:
        """How the target moved away from the state the plan was made from (None: it did
        not), judged on a fresh plan made just before executing. By default any change of
        the `before` state counts."""
        if planned.before == fresh.before:
            return None
        return f"planned from {planned.before}, now {fresh.before}"

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


def url_identity(url: str) -> str:
    """A name for an endpoint that is unique per URL but shows no secret: the scheme, host
    and port, and a digest of the whole URL (webhook paths and credentials are secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    digest = hashlib.sha256(url.encode()).hexdigest()[:10]
    return f"{parts.scheme}://{host}{port}#{digest}"
