"""SLO multiwindow, multi-burn-rate alerting (Google SRE workbook, "Alerting on SLOs").

Values are error ratios per step (bad / total events). The burn rate of a window is its mean
error ratio divided by the error budget (1 - objective). A rule fires only when BOTH its long
and its short window burn faster than its factor: the long window proves it matters, the short
one that it is still happening (so the alert resets quickly after recovery).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from detectors import _kernels
from detectors.base import BaseDetector, check_param

HOUR = 3600.0

# (factor, long window s, short window s, score when firing): two pages, then a ticket.
RULES: tuple[tuple[float, float, float, float], ...] = (
    (14.4, 1 * HOUR, 5 * 60.0, 1.0),
    (6.0, 6 * HOUR, 30 * 60.0, 0.9),
    (1.0, 3 * 24 * HOUR, 6 * HOUR, 0.6),
)


class SloBurnRateDetector(BaseDetector):
    """Score 1.0 / 0.9 for the fast / slow page, 0.6 for a ticket; below 0.5 otherwise.

    Below alarm level the score grows with the closest rule's weaker window relative to its
    factor, so a dashboard still shows a budget that is burning, but slowly.
    """

    name = "slo_burn_rate"
    rules: ClassVar[tuple[tuple[float, float, float, float], ...]] = RULES

    def __init__(self, *, objective: float = 0.999, step_seconds: float = 60.0) -> None:
        self.objective = objective
        self.step_seconds = step_seconds

    def _validate_params(self) -> None:
        check_param("objective", self.objective, 0.5, 0.999999)
        check_param("step_seconds", self.step_seconds, 1.0, HOUR)

    def _reset(self) -> None:
        seconds = [s for _, long_s, short_s, _ in self.rules for s in (long_s, short_s)]
        self.widths_ = np.array([max(1, round(s / self.step_seconds)) for s in seconds], float)
        self.ring_ = np.zeros(int(self.widths_.max()))
        self.sums_ = np.zeros(len(self.widths_))
        self.state_ = np.zeros(2)

    def _consume(self, values: np.ndarray) -> np.ndarray:
        means = _kernels.burn_rates(values, self.ring_, self.sums_, self.state_, self.widths_)
        burn = means / (1.0 - self.objective)
        out = np.zeros(len(values))
        for r, (factor, _, _, firing_score) in enumerate(self.rules):
            weaker = np.fmin(burn[:, 2 * r], burn[:, 2 * r + 1]) / factor
            weaker = np.nan_to_num(weaker, nan=0.0)
            score = np.where(weaker > 1.0, firing_score, 0.45 * np.clip(weaker, 0.0, 1.0))
            out = np.maximum(out, score)
        return out
