"""`MetricSeries`: what every collector returns and every detector and forecaster consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MetricSeries:
    """One series: UTC timestamps (datetime64[ns]) and float values (NaN = no value)."""

    name: str
    timestamps: np.ndarray
    values: np.ndarray
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.timestamps.shape != self.values.shape or self.values.ndim != 1:
            raise ValueError(
                f"series {self.name!r}: timestamps {self.timestamps.shape} and values "
                f"{self.values.shape} must be 1-D of the same length"
            )

    def __len__(self) -> int:
        return len(self.values)

    @property
    def service(self) -> str | None:
        return self.labels.get("service")


def utc(stamp: Any) -> datetime:
    """A series timestamp (naive UTC datetime64) as an aware datetime."""
    nanoseconds = int(np.asarray(stamp, dtype="datetime64[ns]").astype("int64"))
    return datetime.fromtimestamp(nanoseconds / 1e9, UTC)
