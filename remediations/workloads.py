"""What actions on a workload (a Deployment or a StatefulSet) share: its target, readiness of
its newest generation, and scaling that respects a HorizontalPodAutoscaler.

A concrete action names its `kind` and which params field holds the workload's name; the
Deployment and StatefulSet actions are then a few lines each.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import Field, model_validator

from controlplane.domain.quantity import pod_requests
from remediations._kube import WorkloadKind
from remediations.base import (
    REPLICAS,
    Action,
    ActionParams,
    Impact,
    Outcome,
    Plan,
    TargetRef,
    wait_for,
)


class WorkloadParams(ActionParams):
    namespace: str = Field("{namespace}", min_length=1)

    @property
    def workload(self) -> str:
        """The workload's name; each subclass names the field that holds it."""
        raise NotImplementedError


class ScaleParams(WorkloadParams):
    replicas: int | None = Field(None, ge=0, description="Absolute replica count.")
    by: int | None = Field(None, description="Change from the current count (e.g. +2).")

    @model_validator(mode="after")
    def _one(self) -> ScaleParams:
        if (self.replicas is None) == (self.by is None):
            raise ValueError("set exactly one of 'replicas' and 'by'")
        return self


W = TypeVar("W", bound=WorkloadParams)
S = TypeVar("S", bound=ScaleParams)


class WorkloadAction(Action[W]):
    kind: ClassVar[WorkloadKind]

    @classmethod
    def target(cls, params: W) -> TargetRef:
        return TargetRef(cls.kind, params.workload, params.namespace)

    @property
    def namespace(self) -> str:
        return self.params.namespace

    @property
    def workload(self) -> str:
        return self.params.workload

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.workload}"

    def _read(self) -> dict[str, Any]:
        return self.kube.workload(self.kind, self.namespace, self.workload)

    def verify(self, plan: Plan, *, timeout_seconds: float) -> Outcome:
        """Every desired replica of the newest generation is ready."""
        return wait_for(self._ready, timeout_seconds=timeout_seconds)

    def _ready(self) -> Outcome:
        current = self._read()
        spec, status = current.get("spec", {}), current.get("status", {})
        want = spec.get("replicas", 1)
        ready = status.get("readyReplicas", 0) or 0
        updated = status.get("updatedReplicas", 0) or 0
        observed = status.get("observedGeneration", 0) >= current["metadata"].get("generation", 0)
        ok = observed and ready >= want and updated >= want
        return Outcome(
            ok,
            f"{ready}/{want} replicas ready, {updated} updated"
            + ("" if observed else ", generation not yet observed"),
            {"replicas": want, "readyReplicas": ready, "updatedReplicas": updated},
        )


class ScaleWorkload(WorkloadAction[S]):
    """Set a workload's replicas. When an HPA owns it, raise the HPA's `minReplicas` (and
    `maxReplicas` if needed) instead of fighting the autoscaler."""

    @classmethod
    def impact(cls, params: S, plan: Plan) -> Impact:
        """Replicas, and the CPU cores and memory GiB they request (cost guardrails)."""
        before, after = plan.before.get(REPLICAS), plan.after.get(REPLICAS)
        if not (isinstance(before, int) and isinstance(after, int)):
            return Impact()  # not planned against a cluster (a backtest)
        changes: dict[str, tuple[float, float]] = {REPLICAS: (before, after)}
        for quantity, each in (plan.details.get("requests_per_replica") or {}).items():
            changes[quantity] = (before * each, after * each)
        return Impact(changes)

    def plan(self) -> Plan:
        workload = self._read()
        now = int(workload["spec"].get("replicas", 1))
        by = self.params.by or 0
        target = self.params.replicas if self.params.replicas is not None else max(0, now + by)
        hpa = self.kube.hpa_for(self.kind, self.namespace, self.workload)
        before: dict[str, Any]
        after: dict[str, Any]
        if hpa is None:
            before, after = {REPLICAS: now}, {REPLICAS: target}
            answer = self.kube.patch_scale(
                self.kind, self.namespace, self.workload, target, dry_run=True
            )
            summary = f"scale {self.where} from {now} to {target} replicas"
            details: dict[str, Any] = {"hpa": None}
        else:
            spec = hpa["spec"]
            low, high = spec.get("minReplicas", 1), spec["maxReplicas"]
            before = {REPLICAS: now, "hpa": {"minReplicas": low, "maxReplicas": high}}
            new_high = max(high, target)
            after = {
                REPLICAS: max(now, target),
                "hpa": {"minReplicas": target, "maxReplicas": new_high},
            }
            answer = self.kube.patch_hpa(
                self.namespace, hpa["metadata"]["name"], _hpa_patch(target, new_high), dry_run=True
            )
            summary = (
                f"raise HPA {hpa['metadata']['name']} minReplicas from {low} to {target} "
                f"({self.kind.lower()} {self.where} has {now})"
            )
            details = {"hpa": hpa["metadata"]["name"]}
        details["requests_per_replica"] = pod_requests(workload["spec"].get("template") or {})
        target_ref = self.target(self.params).as_dict()
        return Plan(self.name, target_ref, before, after, summary, answer, details)

    def drift(self, planned: Plan, fresh: Plan) -> str | None:
        """With an HPA, only its bounds are ours: the replicas it sets move on their own."""
        if planned.details.get("hpa") != fresh.details.get("hpa"):
            return f"HPA {planned.details.get('hpa')!r} is now {fresh.details.get('hpa')!r}"
        if planned.details.get("hpa"):
            if planned.before["hpa"] == fresh.before["hpa"]:
                return None
            return f"HPA bounds were {planned.before['hpa']}, now {fresh.before['hpa']}"
        return super().drift(planned, fresh)

    def execute(self, plan: Plan, *, dry_run: bool) -> Outcome:
        return self._apply(plan, plan.after, dry_run=dry_run)

    def rollback(self, plan: Plan) -> Outcome:
        return self._apply(plan, plan.before, dry_run=False)

    def verify(self, plan: Plan, *, timeout_seconds: float) -> Outcome:
        return wait_for(
            lambda: self._at_least(plan.after[REPLICAS]), timeout_seconds=timeout_seconds
        )

    def _at_least(self, replicas: int) -> Outcome:
        ready = self._ready()
        ok = ready.ok and ready.state[REPLICAS] >= replicas
        return Outcome(ok, ready.message, ready.state)

    def _apply(self, plan: Plan, state: dict[str, Any], *, dry_run: bool) -> Outcome:
        hpa = plan.details.get("hpa")
        if hpa:
            low, high = state["hpa"]["minReplicas"], state["hpa"]["maxReplicas"]
            answer = self.kube.patch_hpa(
                self.namespace, hpa, _hpa_patch(low, high), dry_run=dry_run
            )
            return Outcome(True, f"HPA {hpa} minReplicas={low} maxReplicas={high}", answer["spec"])
        replicas = state[REPLICAS]
        answer = self.kube.patch_scale(
            self.kind, self.namespace, self.workload, replicas, dry_run=dry_run
        )
        return Outcome(True, f"replicas={replicas}", answer["spec"])


def _hpa_patch(low: int, high: int) -> dict[str, Any]:
    return {"spec": {"minReplicas": low, "maxReplicas": high}}
