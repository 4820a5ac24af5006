"""Kubernetes resource quantities (`500m`, `2`, `512Mi`, `1G`) as numbers: CPU in cores,
memory in GiB."""

from __future__ import annotations

import re

from controlplane.domain.errors import InvalidInputError

_SUFFIX = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
GIB = 2**30


def parse(text: str | int | float) -> float:
    """The quantity's plain value (`500m` -> 0.5, `1Ki` -> 1024)."""
    if isinstance(text, int | float):
        return float(text)
    found = _QUANTITY.match(text.strip())
    if found is None:
        raise InvalidInputError(f"quantity: not a Kubernetes quantity, got {text!r}")
    return float(found.group(1)) * _SUFFIX[found.group(2) or ""]


def pod_requests(template: dict[str, object]) -> dict[str, float]:
    """CPU cores and memory GiB one replica of a pod template requests (its containers')."""
    spec = template.get("spec") if isinstance(template, dict) else None
    containers = spec.get("containers", []) if isinstance(spec, dict) else []
    cpu = memory = 0.0
    for container in containers if isinstance(containers, list) else []:
        requests = (container.get("resources") or {}).get("requests") or {}
        cpu += parse(requests.get("cpu", 0))
        memory += parse(requests.get("memory", 0)) / GIB
    return {"cpu_cores": cpu, "memory_gib": memory}
