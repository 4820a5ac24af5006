"""Forecasting many series at once: a process pool by default, a Dask cluster when configured.

A job is one series with its model and horizon; jobs travel in batches (`batch_size`) so that
a worker's round trip carries enough work. A series that cannot be forecast (too short, bad
values) yields its error message, not a failed fleet. `on_done` is called once per finished
job, in completion order, for progress bars.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import forecasters
from controlplane.domain.errors import ControlPlaneError
from controlplane.domain.series import MetricSeries
from forecasters.base import Forecast


@dataclass(frozen=True)
class ForecastJob:
    key: str
    series: MetricSeries
    horizon: int
    model: str = forecasters.DEFAULT
    backtest_horizon: int | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ForecastResult:
    key: str
    forecast: Forecast | None
    error: str | None = None


Progress = Callable[[ForecastResult], None]


def run_job(job: ForecastJob) -> ForecastResult:
    try:
        model = forecasters.make(job.model, **job.params)
        model.fit(job.series, horizon=job.backtest_horizon)
        return ForecastResult(job.key, model.predict(job.horizon))
    except ControlPlaneError as exc:
        return ForecastResult(job.key, None, f"{job.key}: {exc}")


def run_batch(jobs: list[ForecastJob]) -> list[ForecastResult]:
    return [run_job(job) for job in jobs]


def _batches(jobs: list[ForecastJob], size: int) -> Iterator[list[ForecastJob]]:
    for start in range(0, len(jobs), size):
        yield jobs[start : start + size]


def forecast_fleet(
    jobs: list[ForecastJob],
    *,
    workers: int | None = None,
    dask_address: str | Any | None = None,
    batch_size: int = 10,
    on_done: Progress = lambda result: None,
) -> list[ForecastResult]:
    """Forecast every job; results come back in the jobs' order.

    `dask_address` (a scheduler address or a `distributed.Client`) sends batches to Dask;
    otherwise `workers` processes (default: one per core; 1 = in this process).
    """
    if dask_address is not None:
        done = _on_dask(jobs, dask_address, batch_size, on_done)
    else:
        done = _on_processes(jobs, workers or os.cpu_count() or 1, batch_size, on_done)
    by_key = {result.key: result for result in done}
    return [by_key[job.key] for job in jobs]


def _on_processes(
    jobs: list[ForecastJob], workers: int, batch_size: int, on_done: Progress
) -> list[ForecastResult]:
    results: list[ForecastResult] = []
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            results.append(run_job(job))
            on_done(results[-1])
        return results
    # forkserver, not fork: the API runs reports from a thread, and forking a threaded
    # process can copy a lock held by another thread into the child.
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: list[Future[list[ForecastResult]]] = [
            pool.submit(run_batch, batch) for batch in _batches(jobs, batch_size)
        ]
        for future in as_completed(futures):
            for result in future.result():
                results.append(result)
                on_done(result)
    return results


def _on_dask(
    jobs: list[ForecastJob], address: str | Any, batch_size: int, on_done: Progress
) -> list[ForecastResult]:
    from distributed import Client
    from distributed import as_completed as dask_completed

    client = address if isinstance(address, Client) else Client(address, set_as_default=False)
    try:
        futures = client.map(run_batch, list(_batches(jobs, batch_size)), pure=False)
        results: list[ForecastResult] = []
        for future in dask_completed(futures):
            for result in future.result():
                results.append(result)
                on_done(result)
        return results
    finally:
        if client is not address:
            client.close()
