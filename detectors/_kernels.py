"""Compiled (numba) per-point kernels shared by the detectors.

Each `*_step` kernel scores ONE value of ONE series and updates that series' state in place
(small arrays owned by the detector, or one row of the fleet's columnar arrays); the chunk
kernels walk a series' values through the same step, `detectors.fleet` walks many series.
Because state carries over between calls, scoring a series in one call or point by point through
`update` gives identical results, and a score never depends on a later value (causality).
NaN values are skipped and leave the state untouched. The raw-surprise kernels answer NaN where
they have nothing to say yet (warming up), so calibration does not learn from silence; the
calibrated and final scores are never NaN.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# The robust z state: [count, ring position, long-run mean |value|, points seen, lowest
# value, highest value, long-run mean value, reference (the first tested quantity)].
ROBUST_STATE = 8
# Indices into the `rarity` state vector: [points seen, ring position, ring count, growth].
RARE_SEEN, RARE_POSITION, RARE_COUNT, RARE_GROWTH = 0, 1, 2, 3
RARE_STATE = 4
# Rarity needs this many raw scores before it says anything.
RARE_WARMUP = 20
# Surprises u = z / (z + squash) in [0, 1) are counted in this many equal bins.
RARE_BINS = 100
# The faded counts are stored multiplied by a growing factor (so fading costs nothing per
# point) and brought back to scale when the factor passes this (derived: a count of at most
# 1 / alpha times 1e6 stays far inside float32's range and its 24-bit precision).
RARE_RESCALE = 1e6
# The range breakout needs this many values before the range means anything.
RANGE_WARMUP = 100
# What a scale floor is a fraction of (the `basis` argument of `robust_z`).
BASIS_LEVEL, BASIS_RANGE, BASIS_ABOVE_LOW = 0, 1, 2


# -- robust z over a rolling window ---------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _rank(ring: np.ndarray, order: np.ndarray, count: int, x: np.float32) -> int:
    """Where x goes in order[:count] (ring positions sorted by their values): binary search."""
    lo, hi = 0, count
    while lo < hi:
        mid = (lo + hi) // 2
        if ring[order[mid]] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, error_model="numpy")
def _deviation(ring: np.ndarray, order: np.ndarray, middle: int, side: int, k: int) -> float:
    """The k-th smallest |value - median| on one side of the sorted window: side 0 walks down
    from the median (`middle` values below it), side 1 up from it (the median included)."""
    median = ring[order[middle]]
    if side == 0:
        return float(median) - float(ring[order[middle - 1 - k]])
    return float(ring[order[middle + k]]) - float(median)


@njit(cache=True, error_model="numpy")
def _mad(ring: np.ndarray, order: np.ndarray, count: int) -> float:
    """The median of |window - median| (as numpy's: the mean of the middle two for an even
    count), the median being order[count // 2]. Each side's deviations are sorted already, so
    this is the k-th smallest of two sorted lists: a binary search, no sort, no allocation."""
    middle = count // 2
    below, above = middle, count - middle
    k = (count - 1) // 2  # 0-based rank of the lower middle deviation
    lo, hi = max(0, k + 1 - above), min(k + 1, below)
    while lo < hi:  # how many of the k + 1 smallest come from below the median
        taken = (lo + hi) // 2
        if _deviation(ring, order, middle, 0, taken) < _deviation(
            ring, order, middle, 1, k - taken
        ):
            lo = taken + 1
        else:
            hi = taken
    down, up = lo, k + 1 - lo
    kth = -math.inf
    if down > 0:
        kth = _deviation(ring, order, middle, 0, down - 1)
    if up > 0:
        kth = max(kth, _deviation(ring, order, middle, 1, up - 1))
    if count % 2:
        return kth
    following = math.inf
    if down < below:
        following = _deviation(ring, order, middle, 0, down)
    if up < above:
        following = min(following, _deviation(ring, order, middle, 1, up))
    return 0.5 * (kth + following)


@njit(cache=True, error_model="numpy")
def robust_z_step(
    x: float,
    v: float,
    ring: np.ndarray,
    order: np.ndarray,
    state: np.ndarray,
    floor: float,
    basis: int,
) -> float:
    """|x - median(window)| / max(1.4826 MAD(window), floor * scale), then x joins the window.

    `x` is the quantity tested (the value itself, or a residual); `v`, the value, sets the
    scale floor, so a window of identical residuals (MAD 0) does not turn noise into
    infinity. The scale is the long-run mean |value| (BASIS_LEVEL), the range of values seen
    (BASIS_RANGE) or the long-run mean's height above the lowest value (BASIS_ABOVE_LOW, which
    an offset does not change). The window (`ring`, in arrival order, float32 relative to the
    first x: precision relative to the series' spread, not its level) is kept sorted through
    `order` (ring positions), so a point costs a binary search and a shift, not a sort.
    NaN (nothing to say yet, or a NaN input) leaves the state untouched.
    """
    if math.isnan(v) or math.isnan(x):
        return math.nan
    seen = state[3]
    if seen == 0.0:
        state[4] = state[5] = state[6] = v
        state[7] = x
    x = x - state[7]
    count, width = int(state[0]), ring.shape[0]
    out = math.nan
    if count >= 16:
        median = float(ring[order[count // 2]])
        mad = _mad(ring, order, count) * 1.4826
        if basis == BASIS_LEVEL:
            scale = state[2]
        elif basis == BASIS_RANGE:
            scale = state[5] - state[4]
        else:
            scale = state[6] - state[4]
        out = abs(float(np.float32(x)) - median) / max(mad, floor * scale + 1e-12)
    position = int(state[1])
    x32 = np.float32(x)
    slot = _rank(ring, order, count, x32)  # where x goes among the current window
    if count == width:  # the oldest (at `position`) leaves: one rotation between the two
        k = 0  # a scan of small integers beats a binary search over their values here
        while order[k] != position:
            k += 1
        if slot > k:
            slot -= 1
            for j in range(k, slot):
                order[j] = order[j + 1]
        else:
            for j in range(k, slot, -1):
                order[j] = order[j - 1]
        count -= 1
    else:
        for j in range(count, slot, -1):
            order[j] = order[j - 1]
    ring[position] = x32
    order[slot] = position
    state[0] = count + 1
    state[1] = (position + 1) % width
    state[3] = seen + 1.0
    keep = min(state[3], 2000.0)
    state[2] += (abs(v) - state[2]) / keep
    state[6] += (v - state[6]) / keep
    state[4], state[5] = min(state[4], v), max(state[5], v)
    return out


@njit(cache=True, error_model="numpy")
def robust_z(
    values: np.ndarray,
    tested: np.ndarray,
    ring: np.ndarray,
    order: np.ndarray,
    state: np.ndarray,
    floor: float,
    basis: int,
) -> np.ndarray:
    """`robust_z_step` over a chunk: one score per value."""
    out = np.empty(values.shape[0])
    for i in range(values.shape[0]):
        out[i] = robust_z_step(tested[i], values[i], ring, order, state, floor, basis)
    return out


# -- the same phase of the last cycles ------------------------------------------------------
@njit(cache=True, error_model="numpy")
def seasonal_step(
    v: float, ring: np.ndarray, state: np.ndarray, period: int, seasons: int, drift: int
) -> float:
    """x minus the median of the same phase over the last `seasons` periods.

    The phase is read up to `drift` points either side (drift < period, so always in the past)
    and the residual closest to zero is kept. ring holds the last seasons x period + drift
    values (float32, relative to the first value), NaN included so that phases stay aligned;
    state = [values pushed, reference]. NaN where x is NaN or no earlier value of that phase
    exists.
    """
    pushed = int(state[0])
    size = ring.shape[0]
    if pushed == 0:
        state[1] = 0.0 if math.isnan(v) else v
    x = v - state[1]
    out = math.nan
    if not math.isnan(v):
        closest = math.inf
        for shift in range(-drift, drift + 1):
            a = b = math.nan  # up to three values: the lowest two, sorted (the median is b)
            found = 0
            median = math.nan
            if seasons <= 3:
                for season in range(1, seasons + 1):
                    back = season * period - shift
                    if back <= pushed:
                        y = float(ring[(pushed - back) % size])
                        if not math.isnan(y):
                            if found == 0:
                                a = y
                            elif found == 1:
                                a, b = min(a, y), max(a, y)
                            else:
                                a, b = min(a, y), min(max(a, y), b)
                            found += 1
                if found == 1:
                    median = a
                elif found == 2:
                    median = 0.5 * (a + b)
                elif found == 3:
                    median = b
            else:
                same_phase = np.empty(seasons)
                for season in range(1, seasons + 1):
                    back = season * period - shift
                    if back <= pushed:
                        y = float(ring[(pushed - back) % size])
                        if not math.isnan(y):
                            same_phase[found] = y
                            found += 1
                if found:
                    median = np.median(same_phase[:found])
            if found and abs(x - median) < closest:
                closest = abs(x - median)
                out = x - median
    ring[pushed % size] = x
    state[0] = pushed + 1.0
    return out


# -- calibration: rarity, then novelty ------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _tail(tree: np.ndarray, first: int) -> float:
    """The count of bins >= first, from a Fenwick tree over the bins in reverse order (so a
    tail is a prefix: a sum of a few nodes, never a difference that could round off zero)."""
    i = tree.shape[0] - first
    total = 0.0
    while i > 0:
        total += tree[i - 1]
        i &= i - 1
    return total


@njit(cache=True, error_model="numpy")
def _count(tree: np.ndarray, bin_: int, amount: float) -> None:
    """Add `amount` to bin `bin_` of the reversed Fenwick tree (see `_tail`)."""
    i = tree.shape[0] - bin_
    while i <= tree.shape[0]:
        tree[i - 1] += amount
        i += i & -i


@njit(cache=True, error_model="numpy")
def rarity_step(
    z: float,
    state: np.ndarray,
    point_counts: np.ndarray,
    mean_counts: np.ndarray,
    ring: np.ndarray,
    alpha: float,
    squash: float,
) -> float:
    """How rare a raw surprise is in this series' own memory: 1 / (1 + earlier equal-or-worse).

    The surprise z is bounded to u = z / (z + squash) in [0, 1) and counted in RARE_BINS bins
    whose counts fade by (1 - alpha) per point (a memory of about 1 / alpha points). A point
    scores 1 / (1 + the faded count of earlier points at least as surprising): 1.0 for the most
    surprising thing the series has shown in memory, 0.5 when it happened once before, and so on.
    The same count runs on the mean of u over the last len(ring) points (Numenta's averaging
    window), which catches a burst of moderate surprises that no single point would (with a
    one-point ring the mean is the point: `mean_counts` is then empty and not kept). A count,
    not a fitted distribution, so it means the same on every series: one threshold serves all,
    and a series with a short history can still raise its first alarm. Counts are stored
    times state[RARE_GROWTH], which grows by 1 / (1 - alpha) per point instead of every bin
    being multiplied, in Fenwick trees (`_tail`), so a point costs a few additions, not a
    walk over the bins. 0 for NaN (nothing learnt).
    """
    if math.isnan(z):
        return 0.0
    bins = point_counts.shape[0]
    u = z / (z + squash)
    width = ring.shape[0]
    position, count = int(state[RARE_POSITION]), int(state[RARE_COUNT])
    ring[position] = u
    state[RARE_POSITION] = (position + 1) % width
    count = min(count + 1, width)
    state[RARE_COUNT] = count
    point_bin = min(int(u * bins), bins - 1)
    growth = state[RARE_GROWTH]
    out = 0.0
    mean_bin = 0
    if mean_counts.shape[0]:
        total = 0.0
        for j in range(count):
            total += ring[j]
        mean_bin = min(int(total / count * bins), bins - 1)
        if state[RARE_SEEN] >= RARE_WARMUP:
            earlier = min(_tail(point_counts, point_bin), _tail(mean_counts, mean_bin))
            out = 1.0 / (1.0 + earlier / growth)
    elif state[RARE_SEEN] >= RARE_WARMUP:
        out = 1.0 / (1.0 + _tail(point_counts, point_bin) / growth)
    growth /= 1.0 - alpha
    _count(point_counts, point_bin, growth)
    if mean_counts.shape[0]:
        _count(mean_counts, mean_bin, growth)
    if growth > RARE_RESCALE:
        point_counts /= growth
        mean_counts /= growth
        growth = 1.0
    state[RARE_GROWTH] = growth
    state[RARE_SEEN] += 1.0
    return out


@njit(cache=True, error_model="numpy")
def rarity(
    raw: np.ndarray,
    state: np.ndarray,
    point_counts: np.ndarray,
    mean_counts: np.ndarray,
    ring: np.ndarray,
    alpha: float,
    squash: float,
) -> np.ndarray:
    """`rarity_step` over a chunk."""
    out = np.empty(raw.shape[0])
    for i in range(raw.shape[0]):
        out[i] = rarity_step(raw[i], state, point_counts, mean_counts, ring, alpha, squash)
    return out


@njit(cache=True, error_model="numpy")
def novelty_step(s: float, recent: np.ndarray, state: np.ndarray, damping: float) -> float:
    """Keep a score only when it exceeds every score of the last `len(recent)` points.

    A persisting anomaly then raises one alarm at its onset instead of one per point; repeated
    scores are multiplied by `damping`. Scores are float32 from here (`recent` holds them so).
    The window's highest is kept with its position and only searched again when it leaves.
    state = [position, count, highest, where the highest is].
    """
    s = float(np.float32(s))
    width = recent.shape[0]
    count, position = int(state[1]), int(state[0])
    highest = state[2] if count else 0.0
    recent[position] = s
    if count and int(state[3]) == position and count == width:  # the highest leaves
        best, where = -1.0, 0
        for j in range(width):
            if recent[j] > best:
                best, where = recent[j], j
        state[2], state[3] = best, where
    elif not count or s > state[2]:
        state[2], state[3] = s, position
    state[0] = (position + 1) % width
    state[1] = min(count + 1, width)
    return s if s > highest else s * damping


@njit(cache=True, error_model="numpy")
def novelty(
    scores: np.ndarray, recent: np.ndarray, state: np.ndarray, damping: float
) -> np.ndarray:
    """`novelty_step` over a chunk."""
    out = np.empty(scores.shape[0])
    for i in range(scores.shape[0]):
        out[i] = novelty_step(scores[i], recent, state, damping)
    return out


@njit(cache=True, error_model="numpy")
def range_step(v: float, state: np.ndarray, tolerance: float) -> float:
    """1.0 where a value leaves the range seen so far by more than `tolerance` x its width.

    Numenta's "spatial anomaly" rule: a value the series has never come near is anomalous
    whatever any model predicts. Quiet for the first RANGE_WARMUP values and while the range
    is a single value. state = [values seen, lowest, highest].
    """
    if math.isnan(v):
        return 0.0
    seen, low, high = state[0], state[1], state[2]
    if seen == 0.0:
        low = high = v
    margin = (high - low) * tolerance
    out = 0.0
    if seen >= RANGE_WARMUP and high > low and (v > high + margin or v < low - margin):
        out = 1.0
    state[0], state[1], state[2] = seen + 1.0, min(low, v), max(high, v)
    return out


@njit(cache=True, error_model="numpy")
def range_breakout(values: np.ndarray, state: np.ndarray, tolerance: float) -> np.ndarray:
    """`range_step` over a chunk."""
    out = np.empty(values.shape[0])
    for i in range(values.shape[0]):
        out[i] = range_step(values[i], state, tolerance)
    return out


# -- smoothing and sums ---------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def holt_step(v: float, state: np.ndarray, alpha: float, beta: float) -> float:
    """|value - Holt one-step forecast| / exponentially weighted mean absolute residual.

    state = [seen, level, trend, mean abs residual].
    """
    if math.isnan(v):
        return math.nan
    seen = state[0]
    out = math.nan
    if seen == 0.0:
        state[1] = v
    else:
        forecast = state[1] + state[2]
        residual = v - forecast
        if seen > 10.0:
            out = abs(residual) / (state[3] + 1e-9 * (1.0 + abs(state[1])))
        state[3] += (abs(residual) - state[3]) / min(seen, 100.0)
        level = forecast + alpha * residual
        state[2] = (1.0 - beta) * state[2] + beta * (level - state[1])
        state[1] = level
    state[0] = seen + 1.0
    return out


@njit(cache=True, error_model="numpy")
def holt_residual(values: np.ndarray, state: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """`holt_step` over a chunk."""
    out = np.empty(values.shape[0])
    for i in range(values.shape[0]):
        out[i] = holt_step(values[i], state, alpha, beta)
    return out


@njit(cache=True, error_model="numpy")
def cusum_step(v: float, state: np.ndarray, drift: float, rate: float) -> float:
    """Two-sided CUSUM of values standardised by a slow baseline (mean, mean abs deviation).

    Returns the larger of the upper and lower sums; a sustained level shift makes it climb
    steadily, a lone spike barely moves it. state = [seen, mean, mad, upper, lower].
    """
    if math.isnan(v):
        return math.nan
    seen = state[0]
    out = math.nan
    if seen == 0.0:
        state[1] = v
    else:
        z = (v - state[1]) / (1.2533 * state[2] + 1e-9 * (1.0 + abs(state[1])))
        if seen > 20.0:
            state[3] = max(0.0, state[3] + z - drift)
            state[4] = max(0.0, state[4] - z - drift)
            out = max(state[3], state[4])
        a = max(rate, 1.0 / (seen + 1.0))
        state[2] += a * (abs(v - state[1]) - state[2])
        state[1] += a * (v - state[1])
    state[0] = seen + 1.0
    return out


@njit(cache=True, error_model="numpy")
def cusum(values: np.ndarray, state: np.ndarray, drift: float, rate: float) -> np.ndarray:
    """`cusum_step` over a chunk."""
    out = np.empty(values.shape[0])
    for i in range(values.shape[0]):
        out[i] = cusum_step(values[i], state, drift, rate)
    return out


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def seasonal_residual(
    values: np.ndarray, ring: np.ndarray, state: np.ndarray, period: int, seasons: int, drift: int
) -> np.ndarray:
    """`seasonal_step` over a chunk."""
    out = np.empty(values.shape[0])
    for i in range(values.shape[0]):
        out[i] = seasonal_step(values[i], ring, state, period, seasons, drift)
    return out
