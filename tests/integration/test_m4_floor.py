"""Guards the M4 hourly figures of docs/benchmarks.md (issue 16): `auto` with its defaults on
the competition's 414 hourly series, scored by M4's rules as bench/m4_hourly.py does. Bars
are regression margins over the figures measured on 2026-12-04 (MASE 0.887, geometric mean
of the ratios to seasonal naive 0.727, worst 2.69, MSIS 6.31, coverage 94.9 / 80.2) and
issue 16's coverage bands (95 +- 2, 80 +- 3)."""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
M4 = ROOT.parent / "shared" / "datasets" / "m4-hourly"
sys.path.insert(0, str(ROOT / "bench"))
import m4_hourly as bench  # noqa: E402


def test_auto_on_m4_hourly_keeps_its_figures() -> None:
    if not (M4 / "Hourly-train.csv").exists():
        pytest.skip("../shared/datasets/m4-hourly not found beside the repository")
    train, test = bench.load(M4, "train"), bench.load(M4, "test")
    jobs = [(sid, values, "auto", {}) for sid, values in train.items()]
    with ProcessPoolExecutor(2) as pool:
        frame = pd.concat(pool.map(bench.forecast, jobs, chunksize=8), ignore_index=True)
    rows = bench.per_series(train, test, frame)
    ratios = rows.ratio.clip(lower=1e-12)
    assert rows.mase.mean() <= 0.90  # seasonal naive 1.193
    assert rows.smape.mean() < 13.9  # below seasonal naive's 13.912
    assert np.exp(np.log(ratios).mean()) <= 0.75
    assert ratios.max() <= 3.0, rows.loc[ratios.idxmax(), "id"]
    assert rows.msis.mean() <= 6.5
    assert abs(100 * rows.cov95.mean() - 95) <= 2
    assert abs(100 * rows.cov80.mean() - 80) <= 3
    # Held out: each half on its own stays on the same side of the bars.
    for half in (rows[rows.number % 2 == 1], rows[rows.number % 2 == 0]):
        assert half.mase.mean() <= 0.95
