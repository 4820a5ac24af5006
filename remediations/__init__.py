"""Remediation actions: plan (read-only, with a server-side dry run), execute (absolute state,
dry-run capable), verify (bounded wait), roll back. Sees only `controlplane.domain`; only
`remediations/_kube.py` imports the Kubernetes client.

`build(params, kube)` turns a policy's rendered action parameters into an `Action`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controlplane.domain.errors import InvalidInputError
from remediations._kube import Kube
from remediations.base import Action, Outcome, Plan
from remediations.deployments import RollbackDeployment, RolloutRestart, ScaleDeployment
from remediations.notify import Notify
from remediations.services import Failover

NAMES = (
    "scale_deployment",
    "rollout_restart",
    "rollback_deployment",
    "failover",
    "warm_cache",
    "notify",
)


def build(params: dict[str, Any], kube: Callable[[], Kube]) -> Action:
    """The action for rendered policy parameters; `kube()` connects only when one needs it."""
    kind = params.get("type")
    if kind == "scale_deployment":
        return ScaleDeployment(
            kube(),
            namespace=params["namespace"],
            deployment=params["deployment"],
            replicas=params.get("replicas"),
            by=params.get("by"),
        )
    if kind == "rollout_restart":
        return RolloutRestart(
            kube(), namespace=params["namespace"], deployment=params["deployment"]
        )
    if kind == "rollback_deployment":
        return RollbackDeployment(
            kube(), namespace=params["namespace"], deployment=params["deployment"]
        )
    if kind == "failover":
        return Failover(
            kube(),
            namespace=params["namespace"],
            service=params["service"],
            standby=params["standby"],
            standby_selector=params["standby_selector"],
        )
    if kind == "notify":
        return Notify(url=params["url"], text=params["text"])
    if kind == "warm_cache":
        from remediations.cache import WarmCache

        return WarmCache(**{k: v for k, v in params.items() if k != "type"})
    raise InvalidInputError(f"action type must be one of {list(NAMES)}, got {kind!r}")


__all__ = ["NAMES", "Action", "Kube", "Outcome", "Plan", "build"]
