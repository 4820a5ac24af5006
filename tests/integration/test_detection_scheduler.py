"""The detection scheduler's lifecycle on the real store: an anomaly in a trace RED series
opens an incident, the quiet period resolves it, a dead Prometheus is "no data" while the other
signals carry on; scoring gives the same result in-process and on a Dask LocalCluster; a
restart resumes from the saved detector state, and warms up again when that state is not the
signal's any more or cannot be read."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from distributed import LocalCluster

from controlplane.collectors import traces
from controlplane.config import load_settings
from controlplane.detection.compute import DaskScorer, LocalScorer, warm_fleet
from controlplane.detection.scheduler import DetectionScheduler
from controlplane.storage.models import IncidentRow, SignalStateRow
from controlplane.testing.servers import free_port
from detectors.fleet import EnsembleFleet

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
MINUTES, FAULT = 200, range(150, 158)


def _store_cart_traffic(db) -> None:
    rng = np.random.default_rng(3)
    aggregate = traces.Aggregate()
    for minute in range(MINUTES):
        end_ns = int((T0 + timedelta(minutes=minute, seconds=30)).timestamp() * 1e9)
        errors = 40 if minute in FAULT else int(rng.integers(0, 3))
        for i in range(100):
            aggregate.add_span("cart", "GET /cart", end_ns, 20.0, error=i < errors)
    with db.write() as session:
        traces.store(session, aggregate)


@pytest.fixture(scope="module")
def dask_scorer():
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        scorer = DaskScorer(cluster.scheduler_address, batch_size=1)
        yield scorer
        scorer.close()


@pytest.mark.parametrize("where", ["local", "dask"])
def test_anomaly_opens_then_quiet_period_resolves(db, settings, where, request):
    scorer = LocalScorer() if where == "local" else request.getfixturevalue("dask_scorer")
    _store_cart_traffic(db)
    config = load_settings(
        database={"url": settings.database.url},
        prometheus={"url": f"http://127.0.0.1:{free_port()}", "timeout_seconds": 1},
        detection={
            "history_seconds": 6 * 3600,
            "quiet_seconds": 600,
            "signals": [
                {"name": "cart-errors", "service": "cart", "query": "traces:cart:error_ratio"},
                {"name": "cart-cpu", "service": "cart", "query": "rate(cpu_seconds[5m])"},
            ],
        },
    )
    now = [T0 + timedelta(minutes=FAULT.stop)]
    scheduler = DetectionScheduler(config, db, scorer=scorer, clock=lambda: now[0])

    first = asyncio.run(scheduler.run_cycle())
    assert (first.fetched, first.no_data) == (1, 1)
    assert len(first.opened) == 1
    with db.read() as session:
        incident = session.get(IncidentRow, first.opened[0])
        assert incident.source == "detector"
        assert incident.service == "cart"
        states = {s.signal: s for s in session.query(SignalStateRow)}
    assert states["cart-errors"].status == "anomalous"
    assert states["cart-cpu"].status == "no_data"
    assert "unreachable" in states["cart-cpu"].last_error

    now[0] = T0 + timedelta(minutes=MINUTES)
    second = asyncio.run(scheduler.run_cycle())
    assert second.points == MINUTES - FAULT.stop - 1  # minutes 159..199, none twice
    assert second.resolved == first.opened
    with db.read() as session:
        incident = session.get(IncidentRow, first.opened[0])
        assert incident.status == "resolved"
        assert incident.resolved_by == "detector"
        assert session.get(SignalStateRow, "cart-errors").status == "ok"
    assert asyncio.run(scheduler.run_cycle()).points == 0  # nothing new: nothing re-scored


def test_signals_are_exported_in_the_series_vmanomaly_writes(db, settings, client):
    from prometheus_client.parser import text_string_to_metric_families

    _store_cart_traffic(db)
    config = load_settings(
        database={"url": settings.database.url},
        detection={
            "history_seconds": 6 * 3600,
            "signals": [
                {"name": "cart-errors", "service": "cart", "query": "traces:cart:error_ratio"}
            ],
        },
    )
    now = T0 + timedelta(minutes=FAULT.start + 5)  # the fault is on
    assert asyncio.run(DetectionScheduler(config, db, clock=lambda: now).run_cycle()).opened
    scraped = {
        sample.name: sample
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
        if sample.labels.get("for") == "cart-errors"
    }
    assert set(scraped) == {"anomaly_score", "y", "yhat", "yhat_lower", "yhat_upper"}
    assert scraped["anomaly_score"].labels == {
        "for": "cart-errors",
        "signal": "cart-errors",
        "service": "cart",
    }
    with db.read() as session:
        assert (
            scraped["anomaly_score"].value == session.get(SignalStateRow, "cart-errors").last_score
        )
    assert scraped["y"].value == pytest.approx(0.4)  # the fault's error ratio
    assert scraped["yhat_lower"].value <= scraped["yhat"].value <= scraped["yhat_upper"].value
    assert scraped["yhat_upper"].value < scraped["y"].value  # outside what the window expects


def test_an_anomaly_over_before_the_first_cycle_is_history_not_an_incident(db, settings):
    """The warm-up history trains the detector; only a still-current anomaly opens."""
    _store_cart_traffic(db)
    config = load_settings(
        database={"url": settings.database.url},
        detection={
            "history_seconds": 6 * 3600,
            "quiet_seconds": 600,
            "signals": [
                {"name": "cart-errors", "service": "cart", "query": "traces:cart:error_ratio"}
            ],
        },
    )
    # The fault ended 42 minutes before the first cycle, longer ago than the quiet period.
    scheduler = DetectionScheduler(config, db, clock=lambda: T0 + timedelta(minutes=MINUTES))
    report = asyncio.run(scheduler.run_cycle())
    assert report.points == MINUTES
    assert report.opened == []
    with db.read() as session:
        assert session.query(IncidentRow).count() == 0
        assert session.get(SignalStateRow, "cart-errors").status == "ok"


def test_a_restart_resumes_from_the_saved_state_instead_of_warming_up_again(db, settings, tmp_path):
    """Stopped mid-stream and started again, the scheduler reads only the points after the
    last one it saw, and scores them exactly as one that never stopped."""
    _store_cart_traffic(db)
    signals = [{"name": "cart-errors", "service": "cart", "query": "traces:cart:error_ratio"}]

    def scheduler(state: str, clock: list[datetime]) -> DetectionScheduler:
        config = load_settings(
            database={"url": settings.database.url},
            detection={
                "history_seconds": 6 * 3600,
                "signals": signals,
                "state_dir": str(tmp_path / state),
            },
        )
        return DetectionScheduler(config, db, clock=lambda: clock[0])

    def scores_after(detector: DetectionScheduler) -> list[float]:
        return [s for _, _, s in detector.runs["cart-errors"].recent]

    clock = [T0 + timedelta(minutes=100)]
    steady, first = scheduler("steady", clock), scheduler("restarted", clock)
    asyncio.run(steady.run_cycle())
    warm_up = asyncio.run(first.run_cycle())
    (saved,) = (tmp_path / "restarted").glob("fleet-*.npz")  # a cycle saves (the first one)
    written = saved.stat().st_mtime_ns
    clock[0] += timedelta(minutes=1)
    asyncio.run(first.run_cycle())
    asyncio.run(steady.run_cycle())
    assert saved.stat().st_mtime_ns == written  # not again within snapshot_seconds
    first.save_state()  # what run_forever does when it stops

    clock[0] = T0 + timedelta(minutes=FAULT.stop + 2)  # the fault is still current
    again = scheduler("restarted", clock)
    assert again.runs["cart-errors"].last_ts == first.runs["cart-errors"].last_ts
    resumed = asyncio.run(again.run_cycle())
    carried_on = asyncio.run(steady.run_cycle())
    assert resumed.points == carried_on.points < warm_up.points  # the new minutes only
    assert scores_after(again)[-resumed.points :] == scores_after(steady)[-resumed.points :]
    assert len(resumed.opened) == 1  # the fault at minutes 150-157, found after the restart
    # (the same alert from the scheduler that carried on joins that incident: one store)
    assert steady.runs["cart-errors"].episode is not None


def test_a_changed_signal_or_an_unreadable_state_warms_up_from_history(db, settings, tmp_path):
    _store_cart_traffic(db)
    state = tmp_path / "state"
    clock = [T0 + timedelta(minutes=100)]

    def scheduler(query: str) -> DetectionScheduler:
        config = load_settings(
            database={"url": settings.database.url},
            detection={
                "history_seconds": 6 * 3600,
                "signals": [{"name": "cart", "service": "cart", "query": query}],
                "state_dir": str(state),
            },
        )
        return DetectionScheduler(config, db, clock=lambda: clock[0])

    first = scheduler("traces:cart:error_ratio")
    history = asyncio.run(first.run_cycle()).points
    first.save_state()
    changed = scheduler("traces:cart:rate")  # another query: the saved row is not its state
    assert changed.runs["cart"].last_ts is None
    (saved,) = state.glob("fleet-*.npz")
    saved.write_bytes(b"\x00" * 64)
    broken = scheduler("traces:cart:error_ratio")
    assert broken.runs["cart"].last_ts is None
    assert asyncio.run(broken.run_cycle()).points == history
    assert list(state.glob("*.unreadable")) == [saved.with_suffix(".unreadable")]


def _noisy_cycles(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.sin(np.arange(1200) / 9) * 4 + rng.normal(0, 1, 1200) for _ in range(count)]


def test_a_fleet_warmed_on_dask_workers_is_the_fleet_warmed_here(dask_scorer):
    parts = [(_noisy_cycles, (seed, 3)) for seed in (1, 2)]
    remote = warm_fleet(dask_scorer.client, parts)
    here = EnsembleFleet()
    here.warm(_noisy_cycles(1, 3) + _noisy_cycles(2, 3))
    step = np.linspace(-1, 1, 6)
    assert np.array_equal(remote.update(step), here.update(step))


def test_a_state_that_cannot_be_written_does_not_stop_detection(db, settings, tmp_path, caplog):
    _store_cart_traffic(db)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the state folder should be")
    config = load_settings(
        database={"url": settings.database.url},
        detection={
            "history_seconds": 6 * 3600,
            "signals": [{"name": "cart", "service": "cart", "query": "traces:cart:error_ratio"}],
            "state_dir": str(blocked),
        },
    )
    clock = [T0 + timedelta(minutes=100)]
    scheduler = DetectionScheduler(config, db, clock=lambda: clock[0])
    assert asyncio.run(scheduler.run_cycle()).points > 0
    assert "detector state not saved" in caplog.text
    clock[0] += timedelta(minutes=10)
    assert asyncio.run(scheduler.run_cycle()).points == 10
