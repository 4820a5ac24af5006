"""Shift traffic between backends in steps, on a Gateway API HTTPRoute or an Istio
VirtualService: e.g. 10% -> 50% -> 100% to `to`.

The plan holds one set of weights per step (`details["stages"]`, percentages adding up to
100; the other backends keep their shares of the rest). The executor applies the steps one by
one and checks the policy's PromQL after each; when a step fails it sets the last good weights
again (`apply_stage`) and the decision is rolled back from there. Without steps (a dry run,
the contract test) `execute` sets the final weights and `rollback` the original ones.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from controlplane.domain.errors import InvalidInputError
from remediations._kube import retry_on_conflict
from remediations.base import Action, ActionParams, Outcome, Plan, TargetRef, wait_for

#: (group, version, plural, the rule list's key, the backend list's key) per kind.
ROUTES = {
    "HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes", "rules", "backendRefs"),
    "VirtualService": ("networking.istio.io", "v1", "virtualservices", "http", "route"),
}


class ShiftTrafficParams(ActionParams):
    type: Literal["shift_traffic"]
    namespace: str = Field("{namespace}", min_length=1)
    kind: Literal["HTTPRoute", "VirtualService"] = "HTTPRoute"
    route: str = Field(..., min_length=1, description="The HTTPRoute or VirtualService.")
    to: str = Field(
        ..., min_length=1, description="The backend (Service name or destination host) to move to."
    )
    steps: list[int] = Field(
        default_factory=lambda: [10, 50, 100],
        min_length=1,
        description="Percent of traffic to `to` at each step, increasing, at most 100.",
    )
    rule: int = Field(0, ge=0, description="Which rule (HTTPRoute) or http route (Istio).")

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[int]) -> list[int]:
        if any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
            raise ValueError(f"must increase strictly, each from 1 to 100, got {steps}")
        return steps


class ShiftTraffic(Action[ShiftTrafficParams]):
    name = "shift_traffic"
    Params = ShiftTrafficParams

    @classmethod
    def target(cls, params: ShiftTrafficParams) -> TargetRef:
        return TargetRef(params.kind, params.route, params.namespace)

    def _read(self) -> dict[str, Any]:
        group, version, plural, _, _ = ROUTES[self.params.kind]
        return self.kube.custom_object(
            group, version, plural, self.params.namespace, self.params.route
        )

    def _backends(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        _, _, _, rules, refs = ROUTES[self.params.kind]
        found = (obj.get("spec") or {}).get(rules) or []
        if self.params.rule >= len(found):
            raise InvalidInputError(
                f"rule: {self.params.kind} {self.params.route} has {len(found)} rules, "
                f"got {self.params.rule}"
            )
        backends: list[dict[str, Any]] = found[self.params.rule].get(refs) or []
        return backends

    def _name(self, backend: dict[str, Any]) -> str:
        if self.params.kind == "VirtualService":
            return str(backend["destination"]["host"])
        return str(backend["name"])

    def _weights(self, obj: dict[str, Any]) -> dict[str, int]:
        default = 1 if self.params.kind == "HTTPRoute" else 0
        return {self._name(b): int(b.get("weight", default)) for b in self._backends(obj)}

    def plan(self) -> Plan:
        obj = self._read()
        before = self._weights(obj)
        if self.params.to not in before:
            raise InvalidInputError(
                f"to: {self.params.to!r} is not a backend of {self.params.kind} "
                f"{self.params.route} (backends: {sorted(before)})"
            )
        stages = [_split(before, self.params.to, percent) for percent in self.params.steps]
        answer = self._patch(obj, stages[-1], dry_run=True)
        steps = " -> ".join(f"{p}%" for p in self.params.steps)
        return Plan(
            self.name,
            self.target(self.params).as_dict(),
            {"weights": before},
            {"weights": stages[-1]},
            f"shift {self.params.kind} {self.params.namespace}/{self.params.route} to "
            f"{self.params.to} in steps {steps}, checking after each",
            answer,
            {"stages": stages},
        )

    def execute(self, plan: Plan, *, dry_run: bool) -> Outcome:
        return self.apply_stage(plan.after["weights"], dry_run=dry_run)

    def apply_stage(self, weights: dict[str, int], *, dry_run: bool = False) -> Outcome:
        """Set these weights (a step of the plan, or the last good one)."""
        answer = retry_on_conflict(lambda: self._patch(self._read(), weights, dry_run=dry_run))
        shown = ", ".join(f"{k} {v}%" for k, v in weights.items())
        return Outcome(True, f"weights {shown}", {"weights": self._weights(answer)})

    def rollback(self, plan: Plan) -> Outcome:
        return self.apply_stage(plan.before["weights"])

    def verify(self, plan: Plan, *, timeout_seconds: float) -> Outcome:
        def check() -> Outcome:
            now = self._weights(self._read())
            return Outcome(now == plan.after["weights"], f"weights now {now}")

        return wait_for(check, timeout_seconds=timeout_seconds)

    def _patch(self, obj: dict[str, Any], weights: dict[str, int], *, dry_run: bool) -> Any:
        group, version, plural, rules, refs = ROUTES[self.params.kind]
        version_now = obj["metadata"]["resourceVersion"]
        operations: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": version_now}
        ]
        for i, backend in enumerate(self._backends(obj)):
            path = f"/spec/{rules}/{self.params.rule}/{refs}/{i}/weight"
            operations.append({"op": "add", "path": path, "value": weights[self._name(backend)]})
        return self.kube.patch_custom_object(
            group, version, plural, self.params.namespace, self.params.route, operations,
            dry_run=dry_run,
        )  # fmt: skip


def _split(before: dict[str, int], to: str, percent: int) -> dict[str, int]:
    """`percent` to `to`; the rest shared by the other backends as they share it now
    (evenly when they have none), in whole percent adding up to 100."""
    others = [name for name in before if name != to]
    rest = 100 - percent
    total = sum(before[name] for name in others)
    shares = {name: (before[name] / total if total else 1 / len(others)) * rest for name in others}
    weights = {name: int(share) for name, share in shares.items()}
    # Hand out what rounding down left, largest remainders first.
    left = rest - sum(weights.values())
    for name in sorted(others, key=lambda n: shares[n] - weights[n], reverse=True)[:left]:
        weights[name] += 1
    return {**{name: weights.get(name, 0) for name in before if name != to}, to: percent}
