"""Remediations on StatefulSets: scale (HPA-aware), through the `scale` subresource."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from remediations.workloads import ScaleParams, ScaleWorkload


class ScaleStatefulSetParams(ScaleParams):
    statefulset: str = Field("{service}", min_length=1)
    type: Literal["scale_statefulset"]

    @property
    def workload(self) -> str:
        return self.statefulset


class ScaleStatefulSet(ScaleWorkload[ScaleStatefulSetParams]):
    """Set a StatefulSet's replicas (through its HPA when one owns them). Pods are added or
    removed one ordinal at a time by the StatefulSet controller; verification waits for all
    of them to be ready."""

    name = "scale_statefulset"
    Params = ScaleStatefulSetParams
    kind = "StatefulSet"
