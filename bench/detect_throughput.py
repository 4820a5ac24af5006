"""Detection throughput: streaming (many series, one new point each) and batch (NAB corpus).

    .venv/bin/python bench/detect_throughput.py [--series 10000] [--nab ../shared/datasets/nab]

Streaming: `--series` ensemble detectors are warmed up on `--warmup` points each of a daily
cycle (288 points, as at 5-minute steps) with noise, long enough for the seasonal member to
find the cycle and score; then every one receives one new point. The figure is the wall time
of that round on ONE core (this process), with per-update latency percentiles. Batch: every
NAB file through each detector on one core (`aiops bench nab --workers 1`), and the default
through a pool of all cores.
Peak memory is this process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

import detectors
from controlplane.detection.offline import nab_jobs, run_jobs

DAY = 288  # points per cycle


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def streaming(series: int, warmup: int, detector: str) -> None:
    rng = np.random.default_rng(0)
    cycle = 10 + 3 * np.sin(2 * np.pi * np.arange(warmup + 1) / DAY)
    history = cycle[:warmup] + rng.normal(0, 1, (series, warmup))
    started = time.perf_counter()
    fleet = [detectors.make(detector).fit(history[i]) for i in range(series)]
    warm_s = time.perf_counter() - started
    new = cycle[warmup] + rng.normal(0, 1, series)
    latencies = np.empty(series)
    started = time.perf_counter()
    for i, model in enumerate(fleet):
        t = time.perf_counter()
        model.update(new[i])
        latencies[i] = time.perf_counter() - t
    round_s = time.perf_counter() - started
    p50, p99 = np.percentile(latencies, [50, 99]) * 1e6
    print(
        f"streaming {detector:<16} {series} series: one point each in {round_s:.3f} s "
        f"({series / round_s:,.0f} updates/s; update p50 {p50:.0f} us, p99 {p99:.0f} us); "
        f"warm-up {warm_s:.1f} s; peak RSS {peak_rss_mb():.0f} MB"
    )


def batch(data: Path, detector: str, workers: int) -> None:
    with tempfile.TemporaryDirectory() as out:
        jobs = nab_jobs(data, Path(out), detector)
        started = time.perf_counter()
        rows = run_jobs(jobs, workers=workers or None)
        took = time.perf_counter() - started
    print(
        f"batch     {detector:<16} NAB {len(jobs)} files, {rows} rows, "
        f"{workers or 'all'} worker(s): "
        f"{took:.1f} s ({rows / took:,.0f} rows/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=1500)
    parser.add_argument("--nab", type=Path, default=Path("../shared/datasets/nab"))
    parser.add_argument("--skip-slow", action="store_true", help="Skip isolation_forest batch.")
    args = parser.parse_args()
    detectors.make().fit_score(np.arange(50.0))  # compile the numba kernels first
    streaming(args.series, args.warmup, detectors.DEFAULT)
    for name in detectors.REGISTRY:
        if name == "isolation_forest" and args.skip_slow:
            continue
        batch(args.nab, name, workers=1)
    batch(args.nab, detectors.DEFAULT, workers=0)


if __name__ == "__main__":
    main()
