"""Anomaly detectors (scikit-learn style: fit, score_samples, causal streaming update).

Owns the algorithms and their REGISTRY; the control plane's scheduler, the `aiops detect` and
`aiops bench nab` commands, and the contract tests all find detectors here by name. Sees only
`controlplane.domain`. Adding a detector = one module plus one line in REGISTRY; the shared
contract test (tests/unit/test_detector_contract.py) then checks it.
"""

from __future__ import annotations

from typing import Any

from controlplane.domain.registry import instantiate
from detectors.base import BaseDetector
from detectors.cusum import CusumDetector
from detectors.ensemble import EnsembleDetector
from detectors.holt import HoltWintersDetector
from detectors.iforest import IsolationForestDetector
from detectors.robust import RobustZScoreDetector
from detectors.seasonal import SeasonalDetector
from detectors.slo import SloBurnRateDetector

REGISTRY: dict[str, type[BaseDetector]] = {
    cls.name: cls
    for cls in (
        EnsembleDetector,
        RobustZScoreDetector,
        SeasonalDetector,
        HoltWintersDetector,
        CusumDetector,
        IsolationForestDetector,
        SloBurnRateDetector,
    )
}
DEFAULT = EnsembleDetector.name


def make(name: str = DEFAULT, **params: Any) -> BaseDetector:
    """A fresh, unfitted detector; unknown names and parameters are errors that name them."""
    return instantiate(REGISTRY, "detector", name, params)


__all__ = ["DEFAULT", "REGISTRY", "BaseDetector", "make"]
