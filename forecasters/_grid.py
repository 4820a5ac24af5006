"""A series on a regular grid: the step, seasonal periods, and the seasonal MASE scale.

Real metric series arrive with jitter, gaps, duplicates and NaN. Every forecaster works on the
same regular grid built here: the step is the median spacing, each point goes to its nearest
grid slot (slots hit twice keep the mean), and empty slots are filled by linear interpolation
so that seasonal lags stay aligned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controlplane.domain.errors import InvalidInputError
from controlplane.domain.series import MetricSeries

DAY = 86_400
WEEK = 7 * DAY
#: Beyond this many grid slots the timestamps are not one series' (e.g. one stray year).
MAX_SLOTS = 2_000_000
#: Autocorrelation a candidate period must reach to count as a season.
MIN_SEASONAL_ACF = 0.1


@dataclass(frozen=True)
class Grid:
    """Values on a regular grid: slot i is at `start + i * step`."""

    start: np.datetime64
    step: np.timedelta64
    values: np.ndarray  # float64, no NaN
    measured: np.ndarray  # bool: the slot held a real value (else it was interpolated)

    @property
    def step_seconds(self) -> float:
        return float(self.step / np.timedelta64(1, "s"))

    def future(self, horizon: int) -> np.ndarray:
        """Timestamps of the `horizon` slots after the last one."""
        last = self.start + (len(self.values) - 1) * self.step
        return last + self.step * np.arange(1, horizon + 1)

    def timestamps(self) -> np.ndarray:
        return (self.start + self.step * np.arange(len(self.values))).astype("datetime64[ns]")


def regularize(series: MetricSeries) -> Grid:
    """Put a series on its regular grid; errors name the series and the problem."""
    stamps = np.asarray(series.timestamps, dtype="datetime64[ns]")
    values = np.asarray(series.values, dtype=np.float64)
    if np.isinf(values).any():
        raise InvalidInputError(f"series {series.name!r}: values contain infinity")
    dated = ~np.isnat(stamps)
    known = dated & ~np.isnan(values)
    if known.sum() < 2:
        raise InvalidInputError(
            f"series {series.name!r}: needs at least 2 numeric values, got {int(known.sum())}"
        )
    nanos = np.sort(stamps[dated].astype("int64"))
    gaps = np.diff(nanos)
    positive = gaps[gaps > 0]
    if not len(positive):
        raise InvalidInputError(f"series {series.name!r}: all timestamps are equal")
    step = max(int(np.median(positive)) // 1_000_000_000, 1) * 1_000_000_000
    # The grid runs from the first value to the last row (trailing NaN rows still count:
    # a forecast starts after the last row).
    first = int(stamps[known].astype("int64").min())
    slots = np.rint((stamps[known].astype("int64") - first) / step).astype(np.int64)
    size = int(np.rint((nanos[-1] - first) / step)) + 1
    if size > MAX_SLOTS:
        raise InvalidInputError(
            f"series {series.name!r}: timestamps span {size} steps of {step // 10**9} s "
            f"(at most {MAX_SLOTS}); is one timestamp far off?"
        )
    sums = np.bincount(slots, weights=values[known], minlength=size)
    counts = np.bincount(slots, minlength=size)
    filled = counts > 0
    grid = np.interp(np.arange(size), np.flatnonzero(filled), sums[filled] / counts[filled])
    return Grid(np.datetime64(first, "ns"), np.timedelta64(step, "ns"), grid, filled)


def candidate_periods(step_seconds: float) -> list[int]:
    """Daily and weekly periods in steps, when the step divides them into at least 2 slots."""
    periods = []
    for span in (DAY, WEEK):
        period = round(span / step_seconds)
        if period >= 2 and abs(period * step_seconds - span) <= 0.02 * span:
            periods.append(period)
    return periods


def detect_periods(grid: Grid) -> list[int]:
    """Seasonal periods present in the data: candidates seen twice with autocorrelation."""
    values = grid.values - _linear_trend(grid.values)
    spread = values.std()
    found = []
    for period in candidate_periods(grid.step_seconds):
        if len(values) < 2 * period or spread == 0:
            continue
        a, b = values[period:], values[:-period]
        acf = float(np.mean(a * b) / (spread * spread))
        if acf >= MIN_SEASONAL_ACF:
            found.append(period)
    return found


def season_of(grid: Grid) -> int:
    """The period MASE is scaled by: one day of steps when it fits twice, else 1 (naive)."""
    periods = [p for p in candidate_periods(grid.step_seconds) if len(grid.values) > 2 * p]
    return periods[0] if periods else 1


def mase_scale(values: np.ndarray, season: int) -> float:
    """Mean absolute seasonal difference of the history (never 0)."""
    lag = season if len(values) > season else 1
    diffs = np.abs(values[lag:] - values[:-lag])
    scale = float(diffs.mean()) if len(diffs) else 0.0
    if scale > 0:
        return scale
    return max(float(np.abs(values).mean()) * 1e-3, 1e-9)


def _linear_trend(values: np.ndarray) -> np.ndarray:
    x = np.arange(len(values), dtype=np.float64)
    slope, intercept = np.polyfit(x, values, 1)
    return np.asarray(slope * x + intercept, dtype=np.float64)
