"""Fleet simulation: many signals served by a real Prometheus on loopback, shared by several
`aiops worker` processes on PostgreSQL; one worker is killed half-way.

A generated exporter serves `fleet_value{service=...}` for every series (a random walk per
series, rendered with numpy); Prometheus scrapes it every 5 s. Each series is one detection
signal, all fetched by one family query a cycle (or, with `--one-query-per-signal`, each by
its own query). The workers share them (rendezvous hashing over live members). The benchmark reads
the store while they run and prints:

- cycle period per worker (the time between two state writes of the same worker: the
  cycle's work plus the `detection.interval_seconds` wait after it),
- resident memory per worker,
- after SIGKILL of one worker: seconds until the survivors own its signals, and until every
  one of them was scored again.

Figures only; nothing is asserted.

    .venv/bin/python bench/fleet_sim.py --series 100000 --workers 2 --seconds 240
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sqlalchemy import create_engine, func, select, text

from controlplane.storage import Database, upgrade
from controlplane.storage.models import SignalOwnerRow, SignalStateRow
from controlplane.testing.servers import Prometheus, metrics_target

POSTGRES_URL = os.environ.get(
    "AIOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class Exporter:
    """`fleet_value` for `count` series: a random walk, rendered once per scrape."""

    def __init__(self, count: int) -> None:
        self.names = [f"s{i:06d}" for i in range(count)]
        self.values = np.ones(count)
        self.rng = np.random.default_rng(5)
        self.lock = threading.Lock()

    def exposition(self) -> bytes:
        with self.lock:
            self.values += self.rng.normal(0, 0.01, len(self.values))
            values = self.values.copy()
        lines = [
            f'fleet_value{{service="{n}"}} {v:.5f}' for n, v in zip(self.names, values, strict=True)
        ]
        return ("# TYPE fleet_value gauge\n" + "\n".join(lines) + "\n").encode()


def worker_config(path: Path, names: list[str], prometheus: str, args: argparse.Namespace) -> None:
    config: dict[str, Any] = {
        "log_level": os.environ.get("FLEET_LOG_LEVEL", "WARNING"),
        "prometheus": {"url": prometheus, "timeout_seconds": 30},
        "detection": {
            "interval_seconds": args.interval,
            "history_seconds": 300,
            "snapshot_seconds": 3600,
        },
        "coordination": {"heartbeat_seconds": 2, "member_ttl_seconds": 10},
    }
    detection: dict[str, Any] = config["detection"]
    if args.family:
        detection["families"] = [{"name": "{service}", "query": "fleet_value", "step_seconds": 5}]
    else:
        detection["signals"] = [
            {"name": n, "service": n, "query": f'fleet_value{{service="{n}"}}', "step_seconds": 5}
            for n in names
        ]
    path.write_text(yaml.safe_dump(config, width=200))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cycles(db: Database, into: dict[str, set[datetime]]) -> None:
    """Add each owner's state-write times now in the store (one per cycle) to `into`."""
    with db.read() as session:
        rows = session.execute(
            select(SignalOwnerRow.owner, SignalStateRow.updated_at)
            .join(SignalStateRow, SignalStateRow.signal == SignalOwnerRow.signal)
            .group_by(SignalOwnerRow.owner, SignalStateRow.updated_at)
        ).all()
    for owner, at in rows:
        if owner is not None:
            into.setdefault(owner, set()).add(at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=240, help="run time before the kill")
    parser.add_argument("--after-kill", type=float, default=240, help="longest wait after it")
    parser.add_argument("--interval", type=float, default=10, help="detection.interval_seconds")
    parser.add_argument(
        "--one-query-per-signal",
        dest="family",
        action="store_false",
        help="a signal per series, each with its query (default: one family query for all)",
    )
    args = parser.parse_args()

    schema = f"aiops_fleet_{uuid.uuid4().hex[:8]}"
    with create_engine(POSTGRES_URL).begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    upgrade(url)
    db = Database(url)
    exporter = Exporter(args.series)
    with (
        tempfile.TemporaryDirectory() as tmp,
        metrics_target(exporter.exposition) as target,
        Prometheus(Path(tmp) / "prom", scrape=[target]) as prom,
    ):
        config = Path(tmp) / "worker.yaml"
        worker_config(config, exporter.names, prom.url, args)
        time.sleep(12)  # two scrapes: every series has points
        env = {
            **os.environ,
            "AIOPS_DATABASE__URL": url,
            "AIOPS_DATABASE__MIGRATE_ON_START": "false",
        }
        workers = []
        for i in range(args.workers):
            env_i = {**env, "AIOPS_DETECTION__STATE_DIR": str(Path(tmp) / f"state-{i}")}
            command = [sys.executable, "-m", "controlplane.cli", "--config", str(config), "worker"]
            workers.append(subprocess.Popen(command, env=env_i))
        started = time.monotonic()
        peak: dict[int, float] = {}
        before: dict[str, set[datetime]] = {}
        try:
            while time.monotonic() - started < args.seconds:
                time.sleep(1)
                cycles(db, before)
                for w in workers:
                    peak[w.pid] = max(peak.get(w.pid, 0.0), rss_mib(w.pid))
            with db.read() as session:
                owners = dict(
                    session.execute(select(SignalOwnerRow.signal, SignalOwnerRow.owner)).all()
                )
            victim_pid = workers[0].pid
            victim = next((o for o in set(owners.values()) if o and f":{victim_pid}:" in o), None)
            theirs = {s for s, o in owners.items() if o == victim}
            workers[0].send_signal(signal.SIGKILL)
            killed, killed_at = time.monotonic(), datetime.now(UTC)
            moved_after = rescored_after = None
            while time.monotonic() - killed < args.after_kill:
                time.sleep(1)
                with db.read() as session:
                    left = session.scalar(
                        select(func.count())
                        .select_from(SignalOwnerRow)
                        .where(SignalOwnerRow.owner == victim)
                    )
                    stale = (
                        session.scalar(
                            select(func.count())
                            .select_from(SignalStateRow)
                            .where(
                                SignalStateRow.signal.in_(theirs),
                                SignalStateRow.updated_at <= killed_at,
                            )
                        )
                        if theirs
                        else 0
                    )
                if moved_after is None and left == 0:
                    moved_after = time.monotonic() - killed
                if stale == 0 and moved_after is not None:
                    rescored_after = time.monotonic() - killed
                    break
            for w in workers[1:]:
                peak[w.pid] = max(peak.get(w.pid, 0.0), rss_mib(w.pid))
        finally:
            for w in workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(timeout=120)
    db.dispose()
    with create_engine(POSTGRES_URL).begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))

    how = "one family query" if args.family else "one query per signal"
    print(f"series={args.series} workers={args.workers} interval={args.interval:g}s, {how}")
    for owner, stamps in sorted(before.items()):
        ordered = sorted(stamps)
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ordered)]
        share = sum(1 for o in owners.values() if o == owner)
        steady = gaps[1:] or gaps
        median = statistics.median(steady) if steady else float("nan")
        print(
            f"worker {owner}: {share} signals, {len(ordered)} cycles written, "
            f"period median {median:.1f} s (work {median - args.interval:.1f} s + the "
            f"{args.interval:g} s wait), max {max(steady, default=float('nan')):.1f} s"
        )
    for pid, mib in peak.items():
        print(f"worker pid {pid}: peak RSS {mib:.0f} MiB")
    print(f"killed worker owned {len(theirs)} signals")
    print(f"its signals owned by survivors after: {_seconds(moved_after)}")
    print(f"all of them scored again after: {_seconds(rescored_after)}")


def _seconds(value: float | None) -> str:
    return "not within the wait" if value is None else f"{value:.1f} s"


if __name__ == "__main__":
    main()
