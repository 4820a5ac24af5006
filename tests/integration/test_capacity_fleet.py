"""Fleet forecasting: the same forecasts in this process, in a process pool and on a Dask
LocalCluster; a series that cannot be forecast is reported, not fatal; progress per job."""

from __future__ import annotations

import numpy as np
import pytest

from controlplane.capacity.fleet import ForecastJob, forecast_fleet
from controlplane.domain.series import MetricSeries

pytestmark = pytest.mark.integration


def _jobs() -> list[ForecastJob]:
    rng = np.random.default_rng(11)
    t = np.arange(10 * 24)
    stamps = (np.datetime64("2026-05-01T00:00", "ns") + np.timedelta64(1, "h") * t).astype(
        "datetime64[ns]"
    )
    jobs = []
    for i in range(6):
        values = 50 + i * 10 + 10 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, len(t))
        jobs.append(ForecastJob(f"svc-{i}", MetricSeries(f"svc-{i}", stamps, values), 48))
    lonely = MetricSeries("lonely", stamps[:1], np.array([1.0]))
    jobs.append(ForecastJob("lonely", lonely, 48))
    return jobs


def _check(results, jobs) -> None:
    assert [r.key for r in results] == [j.key for j in jobs]
    *good, bad = results
    assert all(r.forecast is not None and len(r.forecast) == 48 for r in good)
    assert bad.forecast is None
    assert "lonely: series 'lonely': needs at least 2 numeric values" in bad.error


def test_process_pool_matches_in_process():
    jobs = _jobs()
    seen: list[str] = []
    local = forecast_fleet(jobs, workers=1)
    pooled = forecast_fleet(jobs, workers=2, batch_size=2, on_done=lambda r: seen.append(r.key))
    _check(local, jobs)
    _check(pooled, jobs)
    assert sorted(seen) == sorted(j.key for j in jobs)
    for a, b in zip(local[:-1], pooled[:-1], strict=True):
        np.testing.assert_allclose(a.forecast.mean, b.forecast.mean)
        assert a.forecast.model == b.forecast.model


def test_dask_local_cluster_matches_in_process():
    from distributed import Client, LocalCluster

    jobs = _jobs()
    local = forecast_fleet(jobs, workers=1)
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, Client(cluster) as client:
        seen: list[str] = []
        remote = forecast_fleet(
            jobs, dask_address=client, batch_size=3, on_done=lambda r: seen.append(r.key)
        )
        by_address = forecast_fleet(jobs[:2], dask_address=cluster.scheduler_address)
    _check(remote, jobs)
    assert len(seen) == len(jobs)
    for a, b in zip(local[:-1], remote[:-1], strict=True):
        np.testing.assert_allclose(a.forecast.mean, b.forecast.mean)
    assert [r.key for r in by_address] == ["svc-0", "svc-1"]
