"""IsolationForest over windowed features; multivariate across a service's signals.

Each point becomes a feature vector: the last `window` values of every signal, centred on the
latest, plus the latest values themselves (scaled by the training median and IQR). The forest
is trained only on points before the one being scored and retrained every `refit_every`
points on the most recent `max_train`, so scores stay causal and follow slow drift.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.base import BaseDetector, Calibrates, check_param


class IsolationForestDetector(Calibrates, BaseDetector):
    """Isolation depth of the latest window of values; X has shape (points, signals)."""

    name = "isolation_forest"
    multivariate = True

    def __init__(
        self,
        *,
        window: int = 8,
        n_estimators: int = 50,
        min_train: int = 200,
        max_train: int = 2000,
        refit_every: int = 500,
        random_state: int = 0,
        calibration_alpha: float = 0.001,
        mean_window: int = 10,
        novelty_window: int = 100,
        damping: float = 0.5,
    ) -> None:
        self.window = window
        self.n_estimators = n_estimators
        self.min_train = min_train
        self.max_train = max_train
        self.refit_every = refit_every
        self.random_state = random_state
        self.calibration_alpha = calibration_alpha
        self.mean_window = mean_window
        self.novelty_window = novelty_window
        self.damping = damping

    def _validate_params(self) -> None:
        check_param("window", self.window, 1)
        check_param("n_estimators", self.n_estimators, 1)
        check_param("min_train", self.min_train, 16)
        check_param("max_train", self.max_train, self.min_train)
        check_param("refit_every", self.refit_every, 1)
        self._check_calibration()

    def _reset(self) -> None:
        self.recent_: np.ndarray | None = None  # last `window` rows, for the next features
        self.train_: list[np.ndarray] = []  # recent feature rows (bounded by max_train)
        self.model_: Any = None  # sklearn.ensemble.IsolationForest once trained
        self.scale_: tuple[np.ndarray, np.ndarray] | None = None
        self.since_fit_ = 0
        # The forest's own score is already in (0, 1]; calibration only ranks it in memory.
        self.calibration_ = self._new_calibration(squash=1.0, mean_window=self.mean_window)

    def _consume(self, values: np.ndarray) -> np.ndarray:
        raw = np.full(len(values), np.nan)
        for i, row in enumerate(values):
            features = self._features(row)
            if features is None:
                continue
            if self.model_ is not None and self.scale_ is not None:
                centre, spread = self.scale_
                scaled = ((features - centre) / spread)[None, :]
                score = -float(self.model_.score_samples(scaled)[0])
                raw[i] = score / max(1.0 - score, 1e-9)  # odds, so that u = score (squash 1)
            self.train_.append(features)
            del self.train_[: -self.max_train]
            self.since_fit_ += 1
            if len(self.train_) >= self.min_train and (
                self.model_ is None or self.since_fit_ >= self.refit_every
            ):
                self._refit()
        return self.calibration_.novel(self.calibration_.rarity_of(raw))

    def _features(self, row: np.ndarray) -> np.ndarray | None:
        if np.isnan(row).any():
            return None
        recent = row[None, :] if self.recent_ is None else np.vstack([self.recent_, row])
        self.recent_ = recent[-self.window :]
        if len(self.recent_) < self.window:
            return None
        return np.concatenate([(self.recent_ - row).ravel(), row])

    def _refit(self) -> None:
        from sklearn.ensemble import IsolationForest  # heavy; only when this detector is used

        train = np.asarray(self.train_)
        centre = np.median(train, axis=0)
        spread = np.subtract(*np.percentile(train, [75, 25], axis=0))
        spread = np.where(spread > 0, spread, 1.0)
        self.scale_ = (centre, spread)
        self.model_ = IsolationForest(
            n_estimators=self.n_estimators, random_state=self.random_state
        ).fit((train - centre) / spread)
        self.since_fit_ = 0
