"""Remediations on Deployments: scale (HPA-aware), rollout restart, rollback to the previous
revision. Each plans from a fresh read, executes an absolute state, verifies readiness and
knows how to undo itself (a restart cannot be undone, and says so)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import Field

from controlplane.domain.errors import PermanentError
from remediations._kube import REVISION_ANNOTATION, retry_on_conflict
from remediations.base import Outcome, Plan
from remediations.workloads import ScaleParams, ScaleWorkload, WorkloadAction, WorkloadParams

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


class DeploymentParams(WorkloadParams):
    deployment: str = Field("{service}", min_length=1)

    @property
    def workload(self) -> str:
        return self.deployment


D = TypeVar("D", bound=DeploymentParams)


class _DeploymentAction(WorkloadAction[D]):
    kind = "Deployment"


class ScaleDeploymentParams(ScaleParams, DeploymentParams):
    type: Literal["scale_deployment"]


class ScaleDeployment(ScaleWorkload[ScaleDeploymentParams]):
    """Set a deployment's replicas (through its HPA when one owns them)."""

    name = "scale_deployment"
    Params = ScaleDeploymentParams
    kind = "Deployment"


class RolloutRestartParams(DeploymentParams):
    type: Literal["rollout_restart"]


class RollbackDeploymentParams(DeploymentParams):
    type: Literal["rollback_deployment"]


class RolloutRestart(_DeploymentAction[RolloutRestartParams]):
    """What `kubectl rollout restart` does: stamp the pod template so every pod is replaced."""

    name = "rollout_restart"
    Params = RolloutRestartParams
    reversible = False

    def plan(self) -> Plan:
        current = self._read()
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        before_value = _template_annotations(current).get(RESTARTED_AT)
        body = _restart_patch(stamp)
        answer = self.kube.patch_deployment(self.namespace, self.workload, body, dry_run=True)
        return Plan(
            self.name,
            self.target(self.params).as_dict(),
            {"restartedAt": before_value},
            {"restartedAt": stamp},
            f"restart every pod of {self.namespace}/{self.workload}",
            answer,
        )

    def execute(self, plan: Plan, *, dry_run: bool) -> Outcome:
        body = _restart_patch(plan.after["restartedAt"])  # same stamp again: idempotent
        answer = self.kube.patch_deployment(self.namespace, self.workload, body, dry_run=dry_run)
        return Outcome(
            True,
            f"restartedAt={plan.after['restartedAt']}",
            {"generation": answer["metadata"].get("generation")},
        )

    def rollback(self, plan: Plan) -> Outcome:
        return Outcome(True, "a restart cannot be undone; pods were replaced with the same spec")


class RollbackDeployment(_DeploymentAction[RollbackDeploymentParams]):
    """What `kubectl rollout undo` does: put back the pod template of the previous revision."""

    name = "rollback_deployment"
    Params = RollbackDeploymentParams

    def plan(self) -> Plan:
        current = self._read()
        revision = int(current["metadata"].get("annotations", {}).get(REVISION_ANNOTATION, "0"))
        selector = current["spec"]["selector"]["matchLabels"]
        owned = [
            rs
            for rs in self.kube.replicasets(self.namespace, selector)
            if any(
                ref.get("kind") == "Deployment" and ref.get("name") == self.workload
                for ref in rs["metadata"].get("ownerReferences", [])
            )
        ]
        older = [
            rs
            for rs in owned
            if int(rs["metadata"].get("annotations", {}).get(REVISION_ANNOTATION, "0")) < revision
        ]
        if not older:
            raise PermanentError(
                f"rollback_deployment: {self.namespace}/{self.workload} has no revision "
                f"before {revision}"
            )
        previous = max(
            older, key=lambda rs: int(rs["metadata"]["annotations"][REVISION_ANNOTATION])
        )
        template = _clean_template(previous["spec"]["template"])
        before, after = {"template": current["spec"]["template"]}, {"template": template}
        answer = self.kube.patch_deployment(
            self.namespace,
            self.workload,
            _template_patch(template),
            dry_run=True,
            patch_type="json",
        )
        to = previous["metadata"]["annotations"][REVISION_ANNOTATION]
        return Plan(
            self.name,
            self.target(self.params).as_dict(),
            before,
            after,
            f"roll {self.namespace}/{self.workload} back from revision {revision} to {to}",
            answer,
            {"from_revision": revision, "to_revision": int(to)},
        )

    def execute(self, plan: Plan, *, dry_run: bool) -> Outcome:
        return self._put(plan.after["template"], dry_run=dry_run)

    def rollback(self, plan: Plan) -> Outcome:
        return self._put(plan.before["template"], dry_run=False)

    def _put(self, template: dict[str, Any], *, dry_run: bool) -> Outcome:
        def attempt() -> dict[str, Any]:
            return self.kube.patch_deployment(
                self.namespace,
                self.workload,
                _template_patch(template),
                dry_run=dry_run,
                patch_type="json",
            )

        answer = retry_on_conflict(attempt)
        images = [c.get("image") for c in template.get("spec", {}).get("containers", [])]
        revision = answer["metadata"].get("annotations", {}).get(REVISION_ANNOTATION)
        return Outcome(True, f"template with images {images} (revision {revision})")


def _restart_patch(stamp: str) -> dict[str, Any]:
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}


def _template_patch(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"op": "replace", "path": "/spec/template", "value": template}]


def _template_annotations(deployment: dict[str, Any]) -> dict[str, str]:
    return dict(deployment["spec"]["template"].get("metadata", {}).get("annotations") or {})


def _clean_template(template: dict[str, Any]) -> dict[str, Any]:
    """A ReplicaSet's template minus the label the controller adds to it."""
    clean = copy.deepcopy(template)
    clean.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    return clean
