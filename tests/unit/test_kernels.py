"""The incremental kernels against the plain computations they stand for.

The robust window is kept sorted by rotation and its MAD found by a binary search; rarity
counts fade through a growth factor in Fenwick trees; novelty keeps its maximum. Each is
checked here against the obvious (slow) computation on data with ties, NaNs and flat runs.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import _kernels
from detectors._calibration import new_rarity_state
from detectors.base import robust_window

values_with_ties = st.lists(
    st.one_of(st.integers(-3, 3).map(float), st.floats(-1e3, 1e3), st.just(math.nan)),
    min_size=1,
    max_size=400,
)


def plain_robust_z(values: list[float], width: int, floor: float) -> list[float]:
    """Sort the window every point; numpy's median of the absolute deviations."""
    window: list[np.float32] = []
    out, mean_abs, seen, first = [], 0.0, 0, None
    for v in values:
        if math.isnan(v):
            out.append(math.nan)
            continue
        first = v if first is None else first
        x = np.float32(v - first)
        if len(window) >= 16:
            ordered = np.sort(np.array(window, np.float32)).astype(np.float64)
            median = ordered[len(ordered) // 2]
            mad = np.median(np.abs(ordered - median)) * 1.4826
            out.append(abs(float(x) - median) / max(mad, floor * mean_abs + 1e-12))
        else:
            out.append(math.nan)
        window = [*window, x][-width:]
        seen += 1
        mean_abs += (abs(v) - mean_abs) / min(seen, 2000)
    return out


@settings(max_examples=200, deadline=None)
@given(values=values_with_ties, width=st.sampled_from([16, 17, 40, 128]))
def test_the_sorted_window_gives_the_median_and_mad_of_a_full_sort(values, width):
    ring, order, state = robust_window(width)
    x = np.array(values)
    got = _kernels.robust_z(x, x, ring, order, state, 0.05, _kernels.BASIS_LEVEL)
    # The median and MAD are exact picks; only the last division may round differently (a
    # z of 1e10 over a near-zero MAD differed by 3e-8 relative once).
    np.testing.assert_allclose(got, plain_robust_z(values, width, 0.05), rtol=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    scores=st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 0.3333]), max_size=300),
    width=st.integers(1, 30),
)
def test_novelty_keeps_a_score_only_above_everything_in_its_window(scores, width):
    recent, state = np.zeros(width, np.float32), np.zeros(4)
    got = _kernels.novelty(np.array(scores, np.float64), recent, state, 0.5)
    expected = []
    for i, s in enumerate(scores):
        s = float(np.float32(s))
        highest = max((float(np.float32(p)) for p in scores[max(0, i - width) : i]), default=0.0)
        expected.append(s if s > highest else s * 0.5)
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=100, deadline=None)
@given(raw=st.lists(st.one_of(st.floats(0, 50), st.just(math.nan)), max_size=500))
def test_rarity_counts_what_plain_faded_histograms_count(raw):
    alpha, squash, bins = 0.01, 4.0, _kernels.RARE_BINS
    state = new_rarity_state()
    trees = np.zeros(bins, np.float32), np.zeros(bins, np.float32)
    got = _kernels.rarity(np.array(raw), state, *trees, np.zeros(10, np.float32), alpha, squash)
    counts, means, ring, seen, expected = np.zeros(bins), np.zeros(bins), [], 0, []
    for z in raw:
        if math.isnan(z):
            expected.append(0.0)
            continue
        u = z / (z + squash)
        ring = [*ring, float(np.float32(u))][-10:]
        point_bin = min(int(u * bins), bins - 1)
        mean_bin = min(int(sum(ring) / len(ring) * bins), bins - 1)
        earlier = min(counts[point_bin:].sum(), means[mean_bin:].sum())
        expected.append(1.0 / (1.0 + earlier) if seen >= _kernels.RARE_WARMUP else 0.0)
        counts *= 1 - alpha
        means *= 1 - alpha
        counts[point_bin] += 1
        means[mean_bin] += 1
        seen += 1
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # The most surprising point so far is exactly 1.0, never a rounding away from it.
    assert all(g == 1.0 for g, e in zip(got, expected, strict=True) if e == 1.0)
