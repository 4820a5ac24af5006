"""Detection throughput: a fleet of streams (one new point each per round) and batch (NAB).

    .venv/bin/python bench/detect_throughput.py [--series 100000] [--baseline 10000]

Streams carry a daily cycle (288 points, as at 5-minute steps) with noise, long enough for
the seasonal member to find the cycle and score. Three figures, measured in the same run:

- baseline: `--baseline` per-series `EnsembleDetector` objects (the path the scheduler used
  before the fleet): warm-up on `--warmup` points each, then one round of one point each;
- fleet: `--series` rows of one `EnsembleFleet`, warmed up on one core (this process), then
  `--rounds` rounds of one point each: the median and worst round, and the state's bytes a
  series (what `EnsembleFleet.nbytes` counts, and this process' peak resident set);
- the same warm-up on a local Dask cluster of `--workers` single-threaded processes, each
  generating and warming its share: the time until every share is warm on its worker, and
  until the shares are sent back and joined into one fleet here (what `warm_fleet` does).

Batch: every NAB file through each detector on one core (`aiops bench nab --workers 1`), and
the default through a pool of all cores.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import detectors
from controlplane.detection.compute import warm_fleet
from controlplane.detection.offline import nab_jobs, run_jobs
from detectors.fleet import EnsembleFleet

DAY = 288  # points per cycle


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def histories(seed: int, series: int, points: int) -> list[np.ndarray]:
    """`series` noisy daily cycles of `points` points (the same for a seed, on any process)."""
    rng = np.random.default_rng(seed)
    cycle = 10 + 3 * np.sin(2 * np.pi * np.arange(points) / DAY)
    # Series i reads the noise from position 7i: distinct series, generated in O(series).
    noise = rng.normal(0, 1, 7 * series + points)
    return [cycle + noise[7 * i : 7 * i + points] for i in range(series)]


def next_points(series: int, at: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 10 + 3 * np.sin(2 * np.pi * at / DAY) + rng.normal(0, 1, series)


def baseline(series: int, warmup: int) -> float:
    """Per-series detectors: returns the round's seconds."""
    started = time.perf_counter()
    fleet = [detectors.make().fit(h) for h in histories(0, series, warmup)]
    warm_s = time.perf_counter() - started
    new = next_points(series, warmup, 1)
    started = time.perf_counter()
    for model, value in zip(fleet, new, strict=True):
        model.update(value)
    round_s = time.perf_counter() - started
    print(
        f"baseline  {series:,} EnsembleDetector objects: warm-up {warm_s:.1f} s "
        f"({warm_s / series / warmup * 1e9:.0f} ns a point); one round {round_s:.3f} s "
        f"({round_s / series * 1e6:.1f} us a series)"
    )
    return round_s / series


def fleet_local(series: int, warmup: int, rounds: int) -> tuple[float, EnsembleFleet]:
    """One fleet on this core: returns (seconds a series a round, the fleet)."""
    started = time.perf_counter()
    fleet = EnsembleFleet()
    fleet.warm(histories(0, series, warmup))
    warm_s = time.perf_counter() - started
    took = []
    for r in range(rounds):
        new = next_points(series, warmup + r, 1 + r)
        started = time.perf_counter()
        fleet.update(new)
        took.append(time.perf_counter() - started)
    median, worst = statistics.median(took), max(took)
    print(
        f"fleet     {series:,} series, one core: warm-up {warm_s:.1f} s "
        f"({warm_s / series / warmup * 1e9:.0f} ns a point); round median {median:.3f} s, "
        f"worst {worst:.3f} s ({median / series * 1e6:.2f} us a series); state "
        f"{fleet.nbytes / series:,.0f} B a series ({fleet.nbytes / 2**20:,.0f} MiB); "
        f"peak RSS {peak_rss_mb():,.0f} MB"
    )
    return median / series, fleet


def fleet_dask(series: int, warmup: int, workers: int) -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        share = -(-series // workers)
        makers = [
            (histories, (seed, min(share, series - seed * share), warmup))
            for seed in range(workers)
        ]
        client.run(lambda: EnsembleFleet().warm(histories(0, 2, 10)))  # compile on each worker
        started = time.perf_counter()
        warm_at: list[float] = []
        fleet = warm_fleet(client, makers, on_warm=lambda: warm_at.append(time.perf_counter()))
        on_workers = warm_at[0] - started
        took = time.perf_counter() - started
    print(
        f"fleet     {len(fleet):,} series, warm-up on {workers} Dask workers: warm on the "
        f"workers after {on_workers:.1f} s (each generates and warms its share); sent back "
        f"and joined here after {took:.1f} s"
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
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--nab", type=Path, default=Path("../shared/datasets/nab"))
    parser.add_argument("--skip-slow", action="store_true", help="Skip isolation_forest batch.")
    args = parser.parse_args()
    detectors.make().fit_score(np.arange(50.0))  # compile the numba kernels first
    EnsembleFleet().warm(histories(0, 2, 10))
    per_series = baseline(args.baseline, args.warmup)
    per_fleet_series, fleet = fleet_local(args.series, args.warmup, args.rounds)
    del fleet
    print(f"          a round costs {per_fleet_series / per_series:.3f} of the baseline's a series")
    fleet_dask(args.series, args.warmup, args.workers)
    for name in detectors.REGISTRY:
        if name == "isolation_forest" and args.skip_slow:
            continue
        batch(args.nab, name, workers=1)
    batch(args.nab, detectors.DEFAULT, workers=0)


if __name__ == "__main__":
    main()
