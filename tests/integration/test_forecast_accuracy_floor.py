"""Guards the forecast-accuracy figures of docs/benchmarks.md against regressions: on the real
NAB series, `auto` beats seasonal naive on median MASE by at least 15%, on the geometric mean
of the per-series MASE ratios by at least 20% (measured 0.791), is never worse than 1.5 times
seasonal naive on any series (issue 16's bar; measured 1.00), and its 80% and 95% intervals
cover within 5 points of nominal (the same evaluation as bench/forecast_accuracy.py)."""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NAB = ROOT.parent / "shared" / "datasets" / "nab"
sys.path.insert(0, str(ROOT / "bench"))
import forecast_accuracy as bench  # noqa: E402


def _evaluate(job: tuple[Path, str]) -> bench.Score:
    return bench.evaluate(*job)


def test_auto_beats_seasonal_naive_with_calibrated_intervals() -> None:
    files = sorted(f for c in bench.CATEGORIES for f in (NAB / "data" / c).glob("*.csv"))
    if not files:
        pytest.skip("../shared/datasets/nab not found beside the repository")
    jobs = [(f, m) for m in ("seasonal_naive", "auto") for f in files]
    with ProcessPoolExecutor(2) as pool:
        scores = list(pool.map(_evaluate, jobs))
    naive = [s for s in scores if s.model == "seasonal_naive"]
    auto = [s for s in scores if s.model == "auto"]
    assert np.median([s.mase for s in auto]) <= 0.85 * np.median([s.mase for s in naive])
    # A median hides the series where a model blows up: the ratios to seasonal naive do not.
    baseline = {s.series: s.mase for s in naive}
    ratios = np.array([s.mase / baseline[s.series] for s in auto])
    assert np.exp(np.log(ratios).mean()) <= 0.80
    worst = max(auto, key=lambda s: s.mase / baseline[s.series])
    assert ratios.max() <= 1.5, f"{worst.series}: {ratios.max():.2f} times seasonal naive"
    points = sum(s.points for s in auto)
    for level in (80, 95):
        coverage = 100 * sum(s.inside[level] for s in auto) / points
        assert abs(coverage - level) <= 5, f"{level}% intervals cover {coverage:.1f}%"
