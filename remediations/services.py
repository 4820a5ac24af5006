"""Failover: point a Service at the standby deployment's pods (and back)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from controlplane.domain.errors import PermanentError
from remediations._kube import retry_on_conflict
from remediations.base import Action, ActionParams, Outcome, Plan, TargetRef, wait_for


class FailoverParams(ActionParams):
    type: Literal["failover"]
    namespace: str = Field("{namespace}", min_length=1)
    service: str = Field("{service}", min_length=1, description="The Kubernetes Service.")
    standby: str = Field(..., min_length=1, description="The standby deployment.")
    standby_selector: dict[str, str] = Field(..., min_length=1)
    health_promql: str | None = Field(
        None,
        description="Must return a non-empty result just before switching (e.g. the standby's "
        "error ratio under its threshold); otherwise nothing is switched.",
    )


class Failover(Action[FailoverParams]):
    """Switch `service`'s selector from the primary's labels to the standby's, only while the
    standby is healthy: its replicas all ready (planned, and read again just before the
    switch) and `health_promql` holding (the executor checks `details["precheck_promql"]`
    first). Verification waits until the standby has all its replicas ready; rollback
    switches back."""

    name = "failover"
    Params = FailoverParams

    @classmethod
    def target(cls, params: FailoverParams) -> TargetRef:
        return TargetRef("Service", params.service, params.namespace)

    @property
    def namespace(self) -> str:
        return self.params.namespace

    @property
    def service(self) -> str:
        return self.params.service

    @property
    def standby(self) -> str:
        return self.params.standby

    def plan(self) -> Plan:
        current = self.kube.service(self.namespace, self.service)
        before = {"selector": current["spec"].get("selector", {})}
        after = {"selector": dict(self.params.standby_selector)}
        answer = self.kube.patch_service(
            self.namespace, self.service, _selector_patch(after["selector"], None), dry_run=True
        )
        ready, want = self._standby_readiness()
        health = self.params.health_promql
        checks = f"standby {ready}/{want} ready" + (f"; health: {health}" if health else "")
        return Plan(
            self.name,
            self.target(self.params).as_dict(),
            before,
            after,
            f"switch service {self.namespace}/{self.service} to the pods of {self.standby} "
            f"(before switching: {checks})",
            answer,
            {
                "standby": self.standby,
                "standby_ready": f"{ready}/{want}",
                "precheck_promql": health,
            },
        )

    def execute(self, plan: Plan, *, dry_run: bool) -> Outcome:
        ready, want = self._standby_readiness()
        if not dry_run and (want == 0 or ready < want):
            raise PermanentError(
                f"failover: standby {self.namespace}/{self.standby} has {ready}/{want} replicas "
                "ready; nothing was switched"
            )
        return self._switch(plan.after["selector"], dry_run=dry_run)

    def _standby_readiness(self) -> tuple[int, int]:
        standby = self.kube.deployment(self.namespace, self.standby)
        want = int(standby["spec"].get("replicas", 1))
        return int(standby.get("status", {}).get("readyReplicas", 0) or 0), want

    def rollback(self, plan: Plan) -> Outcome:
        return self._switch(plan.before["selector"], dry_run=False)

    def verify(self, plan: Plan, *, timeout_seconds: float) -> Outcome:
        def check() -> Outcome:
            service = self.kube.service(self.namespace, self.service)
            standby = self.kube.deployment(self.namespace, self.standby)
            want = standby["spec"].get("replicas", 1)
            ready = standby.get("status", {}).get("readyReplicas", 0) or 0
            switched = service["spec"].get("selector") == plan.after["selector"]
            ok = switched and want > 0 and ready >= want
            return Outcome(ok, f"selector switched: {switched}; standby {ready}/{want} ready")

        return wait_for(check, timeout_seconds=timeout_seconds)

    def _switch(self, selector: dict[str, str], *, dry_run: bool) -> Outcome:
        def attempt() -> dict[str, Any]:
            version = self.kube.service(self.namespace, self.service)["metadata"]["resourceVersion"]
            body = _selector_patch(selector, version)
            return self.kube.patch_service(self.namespace, self.service, body, dry_run=dry_run)

        answer = retry_on_conflict(attempt)
        return Outcome(True, f"selector={answer['spec'].get('selector')}", answer["spec"])


def _selector_patch(selector: dict[str, str], version: str | None) -> list[dict[str, Any]]:
    """A JSON patch replacing the whole selector (a merge would keep the primary's extra
    labels), guarded by a test of the resourceVersion that was read."""
    operations: list[dict[str, Any]] = []
    if version is not None:
        operations.append({"op": "test", "path": "/metadata/resourceVersion", "value": version})
    operations.append({"op": "replace", "path": "/spec/selector", "value": selector})
    return operations
