"""Compiled (numba) per-point kernels shared by the detectors.

Every kernel walks a chunk of values for ONE series, reads and writes that series' state in
place (small float64 arrays owned by the detector), and returns one score per value. Because
state carries over between calls, scoring a series in one call or point by point through
`update` gives identical results, and a score never depends on a later value (causality).
NaN values are skipped and leave the state untouched. The raw-surprise kernels answer NaN where
they have nothing to say yet (warming up), so calibration does not learn from silence; the
calibrated and final scores are never NaN.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Indices into the `rarity` state vector.
RARE_SEEN, RARE_POSITION, RARE_COUNT = 0, 1, 2
RARE_STATE = 3
# Rarity needs this many raw scores before it says anything.
RARE_WARMUP = 20
# Surprises u = z / (z + squash) in [0, 1) are counted in this many equal bins.
RARE_BINS = 100
# The range breakout needs this many values before the range means anything.
RANGE_WARMUP = 100


@njit(cache=True)
def rolling_robust_z(
    values: np.ndarray, ref: np.ndarray, buf: np.ndarray, state: np.ndarray, floor: float
) -> np.ndarray:
    """|ref - median(window)| / max(1.4826 MAD(window), floor * long-run mean |values|).

    `ref` is the quantity tested (the value itself, or a residual); `values` sets the scale
    floor, so a window of identical residuals (MAD 0) does not turn noise into infinity.
    state = [count, position, long-run mean |value|, points seen].
    """
    n = values.shape[0]
    out = np.full(n, np.nan)
    width = buf.shape[0]
    for i in range(n):
        v, r = values[i], ref[i]
        if math.isnan(v) or math.isnan(r):
            continue
        count = int(state[0])
        if count >= 16:
            window = np.sort(buf[:count])
            median = window[count // 2]
            mad = np.median(np.abs(window - median)) * 1.4826
            out[i] = abs(r - median) / max(mad, floor * state[2] + 1e-12)
        position = int(state[1])
        buf[position] = r
        state[1] = (position + 1) % width
        state[0] = min(count + 1, width)
        state[3] += 1.0
        state[2] += (abs(v) - state[2]) / min(state[3], 2000.0)
    return out


@njit(cache=True)
def seasonal_residual(
    values: np.ndarray, ring: np.ndarray, state: np.ndarray, period: int, seasons: int, drift: int
) -> np.ndarray:
    """x minus the median of the same phase over the last `seasons` periods.

    The phase is read up to `drift` points either side (drift < period, so always in the past)
    and the residual closest to zero is kept. ring holds the last seasons x period + drift
    values, NaN included so that phases stay aligned; state = [values pushed]. NaN where x is
    NaN or no earlier value of that phase exists.
    """
    n = values.shape[0]
    size = ring.shape[0]
    out = np.full(n, np.nan)
    same_phase = np.empty(seasons)
    for i in range(n):
        v = values[i]
        pushed = int(state[0])
        if not math.isnan(v):
            closest = math.inf
            for shift in range(-drift, drift + 1):
                found = 0
                for season in range(1, seasons + 1):
                    back = season * period - shift
                    if back <= pushed:
                        x = ring[(pushed - back) % size]
                        if not math.isnan(x):
                            same_phase[found] = x
                            found += 1
                if found == 0:
                    continue
                ordered = np.sort(same_phase[:found])
                half = found // 2
                median = ordered[half] if found % 2 else 0.5 * (ordered[half - 1] + ordered[half])
                if abs(v - median) < closest:
                    closest = abs(v - median)
                    out[i] = v - median
        ring[pushed % size] = v
        state[0] = pushed + 1.0
    return out


@njit(cache=True)
def _tail(counts: np.ndarray, first: int) -> float:
    total = 0.0
    for j in range(first, counts.shape[0]):
        total += counts[j]
    return total


@njit(cache=True)
def _remember(counts: np.ndarray, bin_: int, keep: float) -> None:
    for j in range(counts.shape[0]):
        counts[j] *= keep
    counts[bin_] += 1.0


@njit(cache=True)
def rarity(
    raw: np.ndarray,
    state: np.ndarray,
    point_counts: np.ndarray,
    mean_counts: np.ndarray,
    ring: np.ndarray,
    alpha: float,
    squash: float,
) -> np.ndarray:
    """How rare a raw surprise is in this series' own memory: 1 / (1 + earlier equal-or-worse).

    The surprise z is bounded to u = z / (z + squash) in [0, 1) and counted in RARE_BINS bins
    whose counts fade by (1 - alpha) per point (a memory of about 1 / alpha points). A point
    scores 1 / (1 + the faded count of earlier points at least as surprising): 1.0 for the most
    surprising thing the series has shown in memory, 0.5 when it happened once before, and so on.
    The same count runs on the mean of u over the last len(ring) points (Numenta's averaging
    window), which catches a burst of moderate surprises that no single point would. A count,
    not a fitted distribution, so it means the same on every series: one threshold serves all,
    and a series with a short history can still raise its first alarm.
    state = [points seen, ring position, ring count].
    """
    n = raw.shape[0]
    out = np.zeros(n)
    bins = point_counts.shape[0]
    keep = 1.0 - alpha
    width = ring.shape[0]
    for i in range(n):
        z = raw[i]
        if math.isnan(z):
            continue
        u = z / (z + squash)
        position, count = int(state[RARE_POSITION]), int(state[RARE_COUNT])
        ring[position] = u
        state[RARE_POSITION] = (position + 1) % width
        count = min(count + 1, width)
        state[RARE_COUNT] = count
        mean = ring[:count].sum() / count
        point_bin = min(int(u * bins), bins - 1)
        mean_bin = min(int(mean * bins), bins - 1)
        if state[RARE_SEEN] >= RARE_WARMUP:
            earlier = min(_tail(point_counts, point_bin), _tail(mean_counts, mean_bin))
            out[i] = 1.0 / (1.0 + earlier)
        _remember(point_counts, point_bin, keep)
        _remember(mean_counts, mean_bin, keep)
        state[RARE_SEEN] += 1.0
    return out


@njit(cache=True)
def range_breakout(values: np.ndarray, state: np.ndarray, tolerance: float) -> np.ndarray:
    """1.0 where a value leaves the range seen so far by more than `tolerance` x its width.

    Numenta's "spatial anomaly" rule: a value the series has never come near is anomalous
    whatever any model predicts. Quiet for the first RANGE_WARMUP values and while the range
    is a single value. state = [values seen, lowest, highest].
    """
    n = values.shape[0]
    out = np.zeros(n)
    for i in range(n):
        v = values[i]
        if math.isnan(v):
            continue
        seen, low, high = state[0], state[1], state[2]
        if seen == 0.0:
            low = high = v
        margin = (high - low) * tolerance
        if seen >= RANGE_WARMUP and high > low and (v > high + margin or v < low - margin):
            out[i] = 1.0
        state[0], state[1], state[2] = seen + 1.0, min(low, v), max(high, v)
    return out


@njit(cache=True)
def novelty(
    scores: np.ndarray, recent: np.ndarray, state: np.ndarray, damping: float
) -> np.ndarray:
    """Keep a score only when it exceeds every score of the last `len(recent)` points.

    A persisting anomaly then raises one alarm at its onset instead of one per point; repeated
    scores are multiplied by `damping`. state = [position, count].
    """
    n = scores.shape[0]
    out = np.zeros(n)
    width = recent.shape[0]
    for i in range(n):
        s = scores[i]
        count = int(state[1])
        highest = 0.0
        for j in range(count):
            highest = max(highest, recent[j])
        out[i] = s if s > highest else s * damping
        position = int(state[0])
        recent[position] = s
        state[0] = (position + 1) % width
        state[1] = min(count + 1, width)
    return out


@njit(cache=True)
def holt_residual(values: np.ndarray, state: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """|value - Holt one-step forecast| / exponentially weighted mean absolute residual.

    state = [seen, level, trend, mean abs residual].
    """
    n = values.shape[0]
    out = np.full(n, np.nan)
    for i in range(n):
        v = values[i]
        if math.isnan(v):
            continue
        seen = state[0]
        if seen == 0.0:
            state[1] = v
        else:
            forecast = state[1] + state[2]
            residual = v - forecast
            if seen > 10.0:
                out[i] = abs(residual) / (state[3] + 1e-9 * (1.0 + abs(state[1])))
            state[3] += (abs(residual) - state[3]) / min(seen, 100.0)
            level = forecast + alpha * residual
            state[2] = (1.0 - beta) * state[2] + beta * (level - state[1])
            state[1] = level
        state[0] = seen + 1.0
    return out


@njit(cache=True)
def cusum(values: np.ndarray, state: np.ndarray, drift: float, rate: float) -> np.ndarray:
    """Two-sided CUSUM of values standardised by a slow baseline (mean, mean abs deviation).

    Returns the larger of the upper and lower sums; a sustained level shift makes it climb
    steadily, a lone spike barely moves it. state = [seen, mean, mad, upper, lower].
    """
    n = values.shape[0]
    out = np.full(n, np.nan)
    for i in range(n):
        v = values[i]
        if math.isnan(v):
            continue
        seen = state[0]
        if seen == 0.0:
            state[1] = v
        else:
            z = (v - state[1]) / (1.2533 * state[2] + 1e-9 * (1.0 + abs(state[1])))
            if seen > 20.0:
                state[3] = max(0.0, state[3] + z - drift)
                state[4] = max(0.0, state[4] - z - drift)
                out[i] = max(state[3], state[4])
            a = max(rate, 1.0 / (seen + 1.0))
            state[2] += a * (abs(v - state[1]) - state[2])
            state[1] += a * (v - state[1])
        state[0] = seen + 1.0
    return out


@njit(cache=True)
def burn_rates(
    values: np.ndarray, ring: np.ndarray, sums: np.ndarray, state: np.ndarray, widths: np.ndarray
) -> np.ndarray:
    """Mean error ratio over each window width (in points), for every point.

    ring holds the last len(ring) >= max(widths) values; sums the running sum per width.
    state = [points seen, ring position]. Returns shape (n, len(widths)); NaN rows for NaN input.
    """
    n = values.shape[0]
    k = widths.shape[0]
    size = ring.shape[0]
    out = np.full((n, k), np.nan)
    for i in range(n):
        v = values[i]
        if math.isnan(v):
            continue
        seen = int(state[0])
        position = int(state[1])
        for j in range(k):
            w = int(widths[j])
            if seen >= w:
                sums[j] -= ring[(position - w) % size]
            sums[j] += v
            out[i, j] = sums[j] / min(seen + 1, w)
        ring[position] = v
        state[1] = (position + 1) % size
        state[0] = seen + 1
    return out
