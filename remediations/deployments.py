"""Remediations on Deployments: scale (HPA-aware), rollout restart, rollback to the previous
revision. Each plans from a fresh read, executes an absolute state, verifies readiness and
knows how to undo itself."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from controlplane.domain.errors import InvalidInputError, PermanentError
from remediations._kube import REVISION_ANNOTATION, Kube, retry_on_conflict
from remediations.base import Action, Outcome, Plan, wait_for

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


class _DeploymentAction(Action):
    def __init__(self, kube: Kube, *, namespace: str, deployment: str) -> None:
        self.kube, self.namespace, self.deployment = kube, namespace, deployment

    @property
    def target(self) -> dict[str, str]:
        return {"kind": "Deployment", "namespace": self.namespace, "name": self.deployment}

    def _read(self) -> dict[str, Any]:
        return self.kube.deployment(self.namespace, self.deployment)

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


class ScaleDeployment(_DeploymentAction):
    """Set a deployment's replicas. When an HPA owns it, raise the HPA's `minReplicas` (and
    `maxReplicas` if needed) instead of fighting the autoscaler."""

    name = "scale_deployment"

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        deployment: str,
        replicas: int | None = None,
        by: int | None = None,
    ) -> None:
        super().__init__(kube, namespace=namespace, deployment=deployment)
        if (replicas is None) == (by is None):
            raise InvalidInputError("scale_deployment: set exactly one of 'replicas' and 'by'")
        if replicas is not None and replicas < 0:
            raise InvalidInputError(f"scale_deployment: replicas must be >= 0, got {replicas!r}")
        self.replicas, self.by = replicas, by

    def plan(self) -> Plan:
        current = self._read()
        now = int(current["spec"].get("replicas", 1))
        target = self.replicas if self.replicas is not None else max(0, now + (self.by or 0))
        hpa = self.kube.hpa_for(self.namespace, self.deployment)
        before: dict[str, Any]
        after: dict[str, Any]
        if hpa is None:
            before, after = {"replicas": now}, {"replicas": target}
            answer = self.kube.patch_scale(self.namespace, self.deployment, target, dry_run=True)
            summary = f"scale {self.namespace}/{self.deployment} from {now} to {target} replicas"
            details: dict[str, Any] = {"hpa": None}
        else:
            spec = hpa["spec"]
            low, high = spec.get("minReplicas", 1), spec["maxReplicas"]
            before = {"replicas": now, "hpa": {"minReplicas": low, "maxReplicas": high}}
            new_high = max(high, target)
            after = {
                "replicas": max(now, target),
                "hpa": {"minReplicas": target, "maxReplicas": new_high},
            }
            answer = self.kube.patch_hpa(
                self.namespace, hpa["metadata"]["name"], _hpa_patch(target, new_high), dry_run=True
            )
            summary = (
                f"raise HPA {hpa['metadata']['name']} minReplicas from {low} to {target} "
                f"(deployment {self.namespace}/{self.deployment} has {now})"
            )
            details = {"hpa": hpa["metadata"]["name"]}
        return Plan(self.name, self.target, before, after, summary, answer, details)

    def execute(self, plan: Plan, *, dry_run: bool) -> Outcome:
        return self._apply(plan, plan.after, dry_run=dry_run)

    def rollback(self, plan: Plan) -> Outcome:
        return self._apply(plan, plan.before, dry_run=False)

    def verify(self, plan: Plan, *, timeout_seconds: float) -> Outcome:
        return wait_for(
            lambda: self._at_least(plan.after["replicas"]), timeout_seconds=timeout_seconds
        )

    def _at_least(self, replicas: int) -> Outcome:
        ready = self._ready()
        ok = ready.ok and ready.state["replicas"] >= replicas
        return Outcome(ok, ready.message, ready.state)

    def _apply(self, plan: Plan, state: dict[str, Any], *, dry_run: bool) -> Outcome:
        hpa = plan.details.get("hpa")
        if hpa:
            low, high = state["hpa"]["minReplicas"], state["hpa"]["maxReplicas"]
            answer = self.kube.patch_hpa(
                self.namespace, hpa, _hpa_patch(low, high), dry_run=dry_run
            )
            return Outcome(True, f"HPA {hpa} minReplicas={low} maxReplicas={high}", answer["spec"])
        replicas = state["replicas"]
        answer = self.kube.patch_scale(self.namespace, self.deployment, replicas, dry_run=dry_run)
        return Outcome(True, f"replicas={replicas}", answer["spec"])


class RolloutRestart(_DeploymentAction):
    """What `kubectl rollout restart` does: stamp the pod template so every pod is replaced."""

    name = "rollout_restart"

    def plan(self) -> Plan:
        current = self._read()
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        before_value = _template_annotations(current).get(RESTARTED_AT)
        body = _restart_patch(stamp)
        answer = self.kube.patch_deployment(self.namespace, self.deployment, body, dry_run=True)
        return Plan(
            self.name,
            self.target,
            {"restartedAt": before_value},
            {"restartedAt": stamp},
            f"restart every pod of {self.namespace}/{self.deployment}",
            answer,
        )

    def execute(self, plan: Plan, *, dry_run: bool) -> Outcome:
        body = _restart_patch(plan.after["restartedAt"])  # same stamp again: idempotent
        answer = self.kube.patch_deployment(self.namespace, self.deployment, body, dry_run=dry_run)
        return Outcome(
            True,
            f"restartedAt={plan.after['restartedAt']}",
            {"generation": answer["metadata"].get("generation")},
        )

    def rollback(self, plan: Plan) -> Outcome:
        return Outcome(True, "a restart cannot be undone; pods were replaced with the same spec")


class RollbackDeployment(_DeploymentAction):
    """What `kubectl rollout undo` does: put back the pod template of the previous revision."""

    name = "rollback_deployment"

    def plan(self) -> Plan:
        current = self._read()
        revision = int(current["metadata"].get("annotations", {}).get(REVISION_ANNOTATION, "0"))
        selector = current["spec"]["selector"]["matchLabels"]
        owned = [
            rs
            for rs in self.kube.replicasets(self.namespace, selector)
            if any(
                ref.get("kind") == "Deployment" and ref.get("name") == self.deployment
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
                f"rollback_deployment: {self.namespace}/{self.deployment} has no revision "
                f"before {revision}"
            )
        previous = max(
            older, key=lambda rs: int(rs["metadata"]["annotations"][REVISION_ANNOTATION])
        )
        template = _clean_template(previous["spec"]["template"])
        before, after = {"template": current["spec"]["template"]}, {"template": template}
        answer = self.kube.patch_deployment(
            self.namespace,
            self.deployment,
            _template_patch(template),
            dry_run=True,
            patch_type="json",
        )
        to = previous["metadata"]["annotations"][REVISION_ANNOTATION]
        return Plan(
            self.name,
            self.target,
            before,
            after,
            f"roll {self.namespace}/{self.deployment} back from revision {revision} to {to}",
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
                self.deployment,
                _template_patch(template),
                dry_run=dry_run,
                patch_type="json",
            )

        answer = retry_on_conflict(attempt)
        images = [c.get("image") for c in template.get("spec", {}).get("containers", [])]
        revision = answer["metadata"].get("annotations", {}).get(REVISION_ANNOTATION)
        return Outcome(True, f"template with images {images} (revision {revision})")


def _hpa_patch(low: int, high: int) -> dict[str, Any]:
    return {"spec": {"minReplicas": low, "maxReplicas": high}}


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
