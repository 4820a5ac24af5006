"""Remediation actions: plan (read-only, with a server-side dry run), execute (absolute state,
dry-run capable), verify (bounded wait), roll back. Sees only `controlplane.domain`; only
`remediations/_kube.py` imports the Kubernetes client.

`REGISTRY` is the single list of actions. The policy schema builds its action union from the
registered params models, the engine asks an action for its target and impact, the runner
builds actions through `build`, and the contract test (tests/integration/
test_action_contract.py) runs every registered action. Adding an action = its module plus
one line here (and its runbook).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from controlplane.domain.errors import InvalidInputError
from remediations._kube import Kube
from remediations.base import Action, ActionParams, Impact, KubeFactory, Outcome, Plan, TargetRef
from remediations.cache import WarmCache
from remediations.deployments import RollbackDeployment, RolloutRestart, ScaleDeployment
from remediations.notify import Notify
from remediations.ratelimit import LimitClient
from remediations.services import Failover
from remediations.statefulsets import ScaleStatefulSet
from remediations.traffic import ShiftTraffic

REGISTRY: dict[str, type[Action[Any]]] = {
    cls.name: cls
    for cls in (
        ScaleDeployment,
        ScaleStatefulSet,
        RolloutRestart,
        RollbackDeployment,
        Failover,
        ShiftTraffic,
        LimitClient,
        WarmCache,
        Notify,
    )
}


def action_class(params: ActionParams) -> type[Action[Any]]:
    """The registered action that takes these params."""
    try:
        return REGISTRY[params.type]
    except KeyError:
        raise InvalidInputError(
            f"action type must be one of {sorted(REGISTRY)}, got {params.type!r}"
        ) from None


def build(params: ActionParams, kube: KubeFactory) -> Action[Any]:
    """The action for validated params; `kube()` connects only when the action needs it."""
    return action_class(params)(params, kube)


def parse(raw: dict[str, Any]) -> ActionParams:
    """Validate a params mapping (e.g. read back from the store) into its action's model;
    errors name the field and the value."""
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in REGISTRY:
        raise InvalidInputError(f"type: must be one of {sorted(REGISTRY)}, got {kind!r}")
    model = REGISTRY[kind].Params
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInputError(_describe(kind, exc)) from None


def _describe(kind: str, exc: ValidationError) -> str:
    """`kind: field = value: message` for each error pydantic found."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "params"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{kind}: {where} = {error.get('input')!r}: {message}")
    return "; ".join(lines)


__all__ = [
    "REGISTRY",
    "Action",
    "ActionParams",
    "Impact",
    "Kube",
    "KubeFactory",
    "Outcome",
    "Plan",
    "TargetRef",
    "action_class",
    "build",
    "parse",
]
