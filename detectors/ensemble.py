"""The default detector: several views of one series, combined after calibration.

Each member sees the series differently (distance from the recent median, from the same phase
of the last cycle, from a smoothed forecast, a drifting level). Their calibrated rarities
share one scale, so they can be combined directly; novelty suppression is applied once, to the
combination, so a persisting anomaly raises one alarm at its onset. On top, a value that
leaves the range the series has ever shown by more than `range_tolerance` of its width scores
1.0 every time (Numenta's spatial-anomaly rule), whatever the members expected.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from controlplane.domain.errors import InvalidInputError
from detectors import _kernels
from detectors.base import BASES, CalibratedDetector, check_choice, check_param
from detectors.cusum import CusumDetector
from detectors.holt import HoltWintersDetector
from detectors.robust import RobustZScoreDetector
from detectors.seasonal import SeasonalDetector

MEMBERS: dict[str, type[CalibratedDetector]] = {
    cls.name: cls
    for cls in (RobustZScoreDetector, SeasonalDetector, HoltWintersDetector, CusumDetector)
}
COMBINE = ("max", "mean")


#: What each member's high rarity means, in words.
WHY = {
    "robust_zscore": "far from its recent median",
    "seasonal": "unlike the same phase of its cycle",
    "cusum": "a sustained shift of its level",
    "holt_winters": "far from its smoothed trend and season",
}


class EnsembleDetector(CalibratedDetector):
    """Combines the members' calibrated scores by `combine` ("max" or "mean") and `weights`."""

    name = "ensemble"

    def __init__(
        self,
        *,
        members: tuple[str, ...] = ("robust_zscore", "seasonal", "cusum"),
        weights: tuple[float, ...] | None = None,
        combine: str = "max",
        range_tolerance: float | None = 0.05,
        floor: float = 0.10,
        jitter: float = 0.01,
        floor_basis: str = "above_low",
        **calibration: Any,
    ) -> None:
        # One configuration for every series (see docs/benchmarks.md): the CUSUM member
        # catches level shifts the others absorb; the 5% range tolerance and the 10-point
        # burst mean are Numenta's constants, not tuned here. `floor_basis` "above_low" is
        # derived: a minimum effect size measured from the series' lowest value is the same
        # whatever the series' offset (a floor relative to the level hid a 25-sigma change on
        # a series at 1e6: tests/unit/test_detector_robustness.py). `floor` (10%, the
        # members' minimum effect size) and `jitter` (1%, the seasonal member's phase
        # tolerance) were chosen on the NAB development subset's score: bench/nab_loco.py
        # chooses them again with each category left out (the leave-one-category-out figure).
        super().__init__(**calibration)
        self.members = tuple(members)
        self.weights = None if weights is None else tuple(weights)
        self.combine = combine
        self.range_tolerance = range_tolerance
        self.floor = floor
        self.jitter = jitter
        self.floor_basis = floor_basis

    def _validate_params(self) -> None:
        super()._validate_params()
        unknown = [m for m in self.members if m not in MEMBERS]
        if not self.members or unknown:
            raise InvalidInputError(
                f"members must name some of {sorted(MEMBERS)}, got {self.members!r}"
            )
        if self.weights is not None and len(self.weights) != len(self.members):
            raise InvalidInputError(
                f"weights must have one entry per member ({len(self.members)}), "
                f"got {self.weights!r}"
            )
        for w in self.weights or ():
            check_param("weights", w, 0.0)
        check_choice("combine", self.combine, COMBINE)
        check_choice("floor_basis", self.floor_basis, BASES)
        if self.range_tolerance is not None:
            check_param("range_tolerance", self.range_tolerance, 0.0)
        check_param("floor", self.floor, 0.0)
        check_param("jitter", self.jitter, 0.0, 0.25)

    def _reset(self) -> None:
        super()._reset()
        self.members_ = [
            MEMBERS[m](
                calibration_alpha=self.calibration_alpha,
                squash=self.squash,
                mean_window=self.mean_window,
                novelty_window=self.novelty_window,
                damping=self.damping,
                **self._shape_params(m),
            ).fit([])
            for m in self.members
        ]
        self.range_ = np.zeros(3)

    def _shape_params(self, member: str) -> dict[str, Any]:
        """The shared constants a member takes: the floor (robust z and seasonal), the
        jitter (seasonal)."""
        accepted = inspect.signature(MEMBERS[member].__init__).parameters
        offered = {"floor": self.floor, "jitter": self.jitter, "floor_basis": self.floor_basis}
        return {k: v for k, v in offered.items() if k in accepted}

    def _raw(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError("the ensemble combines calibrated member scores")

    def _calibrated(self, values: np.ndarray) -> np.ndarray:
        scores = np.vstack([m._calibrated(values) for m in self.members_])
        if scores.shape[1]:
            self.last_members_ = scores[:, -1].copy()
        weights = np.ones(len(self.members_)) if self.weights is None else np.array(self.weights)
        weighted = scores * weights[:, None]
        combined = (
            weighted.max(axis=0) if self.combine == "max" else weighted.sum(axis=0) / weights.sum()
        )
        return np.asarray(np.clip(combined, 0.0, 1.0), dtype=np.float64)

    def _consume(self, values: np.ndarray) -> np.ndarray:
        scores = super()._consume(values)
        if self.range_tolerance is None:
            return scores
        # After novelty: a breakout is never held off by an earlier alarm.
        self.last_range_ = (float(self.range_[1]), float(self.range_[2]))  # before this batch
        breakouts = _kernels.range_breakout(values, self.range_, self.range_tolerance)
        self.last_breakout_ = bool(len(breakouts) and breakouts[-1] >= 1.0)
        return np.asarray(np.maximum(scores, breakouts), dtype=np.float64)

    def explain(self) -> str | None:
        """The range rule when it fired, else the members by how rare they found the point."""
        if getattr(self, "last_breakout_", False):
            low, high = self.last_range_
            return self.range_words(low, high, float(self.range_tolerance or 0.0))
        rarities = getattr(self, "last_members_", None)
        if rarities is None:
            return None
        return self.member_words(self.members, [float(r) for r in rarities])

    @staticmethod
    def range_words(low: float, high: float, tolerance: float) -> str:
        return (
            f"the value left the range this series had shown ({low:.4g} to {high:.4g}) "
            f"by more than {tolerance:.0%} of its width"
        )

    @staticmethod
    def member_words(members: tuple[str, ...], rarities: list[float]) -> str:
        ranked = sorted(zip(members, rarities, strict=True), key=lambda m: -m[1])
        (top, rarity), rest = ranked[0], ranked[1:]
        others = ", ".join(f"{name} {score:.2f}" for name, score in rest)
        rarest = f"{WHY[top]} (rarity, 1 = the rarest in memory: {top} {rarity:.2f}"
        return rarest + (f"; {others})" if others else ")")
