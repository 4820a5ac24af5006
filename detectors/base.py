"""`BaseDetector`: the scikit-learn-style contract every detector follows.

- `__init__` only stores keyword hyperparameters (`get_params` returns them).
- `fit(X)` starts a fresh stream, learns from X and returns self; learned state ends in `_`.
- `score_samples(X)` scores X as the continuation of the fitted stream *without* changing the
  model (it works on a copy), so it can be called again with other data.
- `update(x)` scores one new point and learns from it: the streaming path (`update_many` for
  a chunk of new points).
- `fit_score(X)` = score every point of X as a fresh stream (what `aiops detect` does).

Scores are in [0, 1], higher is more anomalous, and causal: a point's score depends only on
that point and the ones before it. X is a 1-D array (or a one-column 2-D array) of floats;
NaN means "no value here" and scores 0 without changing the state.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np

from controlplane.domain.errors import InvalidInputError, NotFittedError
from detectors import _kernels
from detectors._calibration import Calibration


def as_values(X: Any, *, columns: int | None = 1) -> np.ndarray:
    """Validate X into float64: 1-D for univariate detectors, 2-D (n, k) when `columns` is None."""
    try:
        array = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"X must be numeric, got {X!r:.80}") from exc
    if columns == 1:
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise InvalidInputError(f"X must be 1-D (one series), got shape {array.shape}")
    elif array.ndim == 1:
        array = array[:, None]
    elif array.ndim != 2:
        raise InvalidInputError(f"X must be 2-D (points x signals), got shape {array.shape}")
    if np.isinf(array).any():
        raise InvalidInputError("X contains infinity; use NaN for a missing value")
    return np.ascontiguousarray(array)


#: What a scale floor is a fraction of: the series' typical level, the range it has shown, or
#: how far its long-run mean sits above its lowest value (see `_kernels.robust_z_step`).
BASES = ("level", "range", "above_low")


def robust_window(width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh state for `_kernels.robust_z`: the window (float32), its sort order, the scalars."""
    return (
        np.zeros(width, np.float32),
        np.zeros(width, np.uint8),
        np.zeros(_kernels.ROBUST_STATE),
    )


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidInputError(f"{name} must be one of {choices}, got {value!r}")


def check_param(name: str, value: float, low: float, high: float = float("inf")) -> None:
    if not low <= value <= high:
        raise InvalidInputError(f"{name} must be in [{low}, {high}], got {value!r}")


class BaseDetector(ABC):
    """Streaming anomaly detector with scikit-learn's outlier-detector surface."""

    name: ClassVar[str]
    #: Scores at or above this raise an anomaly in the control plane.
    alarm_threshold: ClassVar[float] = 0.5
    #: Multivariate detectors take X of shape (n, k); the others one series.
    multivariate: ClassVar[bool] = False

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # -- public surface -----------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> Self:
        self._validate_params()
        self._reset()
        values = self._values(X)
        if len(values):
            self._consume(values)
        self.n_seen_ = len(values)
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        self._check_fitted()
        return copy.deepcopy(self)._consume(self._values(X))

    def update(self, x: Any) -> float:
        return float(self.update_many([x])[0])

    def update_many(self, X: Any) -> np.ndarray:
        """Score new points in order and learn from them (= `update` for each, faster)."""
        self._check_fitted()
        values = self._values(X)
        self.n_seen_ += len(values)
        return self._consume(values)

    def explain(self) -> str | None:
        """Why the latest point scored as it did, in words a person can act on (None: this
        detector gives no account). Read after `update_many` or `fit_score`."""
        return None

    def fit_score(self, X: Any) -> np.ndarray:
        values = self._values(X)
        self.fit(values[:0])
        self.n_seen_ = len(values)
        return self._consume(values)

    # -- what a detector implements ------------------------------------------------------
    def _validate_params(self) -> None:  # noqa: B027 (optional hook)
        """Raise InvalidInputError naming a bad hyperparameter."""

    @abstractmethod
    def _reset(self) -> None:
        """Create fresh learned state (attributes ending in `_`)."""

    @abstractmethod
    def _consume(self, values: np.ndarray) -> np.ndarray:
        """Score values in order, learning from each; returns scores in [0, 1]."""

    # -- helpers ---------------------------------------------------------------------------
    def _values(self, X: Any) -> np.ndarray:
        return as_values(X, columns=None if self.multivariate else 1)

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_seen_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X) first")


class Calibrates:
    """The calibration parameters every calibrating detector takes, their checks, its state.

    `calibration_alpha` sets the memory (about 1 / alpha points), `mean_window` the points
    averaged for the burst check, `novelty_window` how long an alarm holds off a weaker one,
    and `damping` what a held-off score is multiplied by.
    """

    calibration_alpha: float
    mean_window: int
    novelty_window: int
    damping: float

    def _check_calibration(self) -> None:
        check_param("calibration_alpha", self.calibration_alpha, 1e-6, 1.0)
        check_param("mean_window", self.mean_window, 1)
        check_param("novelty_window", self.novelty_window, 0)
        check_param("damping", self.damping, 0.0, 1.0)

    def _new_calibration(self, *, squash: float, mean_window: int) -> Calibration:
        return Calibration(
            alpha=self.calibration_alpha,
            squash=squash,
            mean_window=mean_window,
            novelty_window=self.novelty_window,
            damping=self.damping,
        )


class CalibratedDetector(Calibrates, BaseDetector):
    """A univariate detector whose raw surprise goes through per-series calibration.

    Subclasses compute `_raw` (a non-negative surprise per point); this class turns it into a
    rarity against the series' own memory (`_calibrated`, what the ensemble combines) and keeps
    only novel highs (see `Calibrates` for the parameters; `squash` bounds the surprise).
    """

    #: Whether the burst check (the mean over `mean_window` points) applies. A surprise that
    #: is already a running sum (CUSUM) turns its own random walk into "bursts" when averaged.
    averages_bursts: ClassVar[bool] = True

    def __init__(
        self,
        *,
        # Provenance (docs/benchmarks.md): alpha, the previous default's (a memory of ~1,000
        # points). NAB cannot choose it: its files are shorter than the memories compared
        # (the development score is the same from 0.0001 to 0.002). A longer memory is
        # quieter on long streams (at 0.9, 8.5 alarms per 10,000 points of white noise at
        # 0.001, 2.1 at 0.0002) but scores a later, smaller anomaly lower for longer; the
        # scheduler's `sustain_points` already keeps noise from opening incidents, so the
        # memory stays. Squash, the previous default's, its effect on NAB not measured; the
        # 10-point burst mean, Numenta's published constant; the 100-point novelty window,
        # the previous default's; damping, the previous default's (the live scheduler uses
        # 1, derived: an episode must stay open while the anomaly lasts).
        calibration_alpha: float = 0.001,
        squash: float = 4.0,
        mean_window: int = 10,
        novelty_window: int = 100,
        damping: float = 0.5,
    ) -> None:
        self.calibration_alpha = calibration_alpha
        self.squash = squash
        self.mean_window = mean_window
        self.novelty_window = novelty_window
        self.damping = damping

    def _validate_params(self) -> None:
        self._check_calibration()
        check_param("squash", self.squash, 1e-6)

    def _reset(self) -> None:
        self.calibration_ = self._new_calibration(
            squash=self.squash, mean_window=self.mean_window if self.averages_bursts else 1
        )

    @abstractmethod
    def _raw(self, values: np.ndarray) -> np.ndarray:
        """Non-negative raw surprise per value (NaN or 0 where there is nothing to say)."""

    def _calibrated(self, values: np.ndarray) -> np.ndarray:
        return self.calibration_.rarity_of(self._raw(values))

    def _consume(self, values: np.ndarray) -> np.ndarray:
        return self.calibration_.novel(self._calibrated(values))
