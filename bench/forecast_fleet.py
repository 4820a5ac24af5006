"""Fleet forecasting speed: N series of 30 days at 1-hour steps, 7 days ahead with `auto`.

Runs the same synthetic fleet (daily and weekly cycles, trends, noise, a few gaps) in a
process pool (one worker per core) and on a Dask LocalCluster (one worker per core, one
thread each), and prints wall time, series per second and the peak memory of this process
and its children.

    .venv/bin/python bench/forecast_fleet.py [--series 1000] [--model auto]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import warnings

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from controlplane.capacity.fleet import ForecastJob, forecast_fleet
from controlplane.domain.series import MetricSeries

DAYS, HORIZON = 30, 7 * 24


def fleet(count: int, seed: int = 0) -> list[ForecastJob]:
    rng = np.random.default_rng(seed)
    t = np.arange(DAYS * 24)
    stamps = (np.datetime64("2026-10-01T00:00", "ns") + np.timedelta64(1, "h") * t).astype(
        "datetime64[ns]"
    )
    jobs = []
    for i in range(count):
        level, daily, weekly = rng.uniform(10, 500), rng.uniform(0, 0.5), rng.uniform(0, 0.3)
        values = level * (
            1
            + daily * np.sin(2 * np.pi * (t + rng.integers(24)) / 24)
            + weekly * np.sin(2 * np.pi * t / 168)
            + rng.uniform(-0.3, 0.6) * t / len(t)
            + rng.normal(0, rng.uniform(0.01, 0.15), len(t))
        )
        values[rng.integers(len(t), size=5)] = np.nan
        jobs.append(ForecastJob(f"svc-{i}", MetricSeries(f"svc-{i}", stamps, values), HORIZON))
    return jobs


def timed(label: str, jobs: list[ForecastJob], **where: object) -> tuple[str, float, int]:
    with Progress(transient=True) as progress:
        task = progress.add_task(label, total=len(jobs))
        started = time.perf_counter()
        results = forecast_fleet(jobs, on_done=lambda r: progress.advance(task), **where)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - started
    failed = sum(r.error is not None for r in results)
    return label, elapsed, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--model", default="auto")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    jobs = [ForecastJob(j.key, j.series, j.horizon, args.model) for j in fleet(args.series)]
    cores = os.cpu_count() or 1
    rows = [timed(f"process pool ({cores} workers)", jobs, workers=cores)]
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=cores, threads_per_worker=1, processes=True)
    with cluster, Client(cluster) as client:
        rows.append(timed(f"Dask LocalCluster ({cores} workers)", jobs, dask_address=client))
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    table = Table(title=f"{args.series} series x {DAYS} days hourly, {HORIZON} steps, {args.model}")
    for column in ("where", "wall s", "series/s", "failed"):
        table.add_column(column, justify="right")
    for label, elapsed, failed in rows:
        table.add_row(label, f"{elapsed:.1f}", f"{len(jobs) / elapsed:.1f}", str(failed))
    Console().print(table)
    print(f"peak RSS of one process (this or a worker): {peak / 1024:.0f} MB")


if __name__ == "__main__":
    main()
