"""Alert to action: from an Alertmanager notification arriving at the webhook to the decision
recorded with its dry-run plan (and the API server's dry-run answer) in the store.

The API (uvicorn, SQLite in a temporary folder, policy loop every 50 ms) runs in this process
with N policies loaded (one per service, dry_run `scale_deployment`), against the fake
Kubernetes API server on loopback holding one deployment per service. Two measurements:

- latency: notifications sent one at a time; for each, the time from the POST until its
  decision row exists (p50, p95, p99, max);
- throughput: a burst of notifications; decisions per second until all are recorded.

    .venv/bin/python bench/alert_to_action.py [--policies 1000] [--alerts 200] [--burst 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from controlplane import auth
from controlplane.api import create_app
from controlplane.config import load_settings
from controlplane.domain.models import Role
from controlplane.storage import Database, upgrade
from controlplane.storage.models import DecisionRow, IncidentRow
from controlplane.testing.kube import FakeKube
from controlplane.testing.servers import ApiServer

NAMESPACE = "shop"


def policies(count: int) -> dict:
    return {
        "policies": [
            {
                "name": f"svc-{i:04d}-scale",
                "match": {"service": [f"svc-{i:04d}"], "alertname": ["HighLatency"]},
                "action": {"type": "scale_deployment", "namespace": NAMESPACE, "by": 1},
                "mode": "dry_run",
                "guardrails": {"blast_radius": {"max_replica_change": 3}},
            }
            for i in range(count)
        ]
    }


def notification(service: str) -> dict:
    now = datetime.now(UTC).isoformat()
    labels = {
        "alertname": "HighLatency",
        "service": service,
        "namespace": NAMESPACE,
        "severity": "critical",
        "run": uuid.uuid4().hex[:8],
    }
    return {
        "version": "4",
        "receiver": "aiops",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"{service} p95 latency high"},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": labels["run"],
            }
        ],
        "groupLabels": {"service": service},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "",
        "groupKey": f"{{}}:{{run={labels['run']!r}}}",
        "truncatedAlerts": 0,
    }


def decided(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(DecisionRow)) or 0


def wait_for(db: Database, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while decided(db) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {decided(db)} of {count} decisions after {timeout} s")
        time.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--burst", type=int, default=300)
    args = parser.parse_args()
    services = [f"svc-{i:04d}" for i in range(args.policies)]
    with tempfile.TemporaryDirectory() as tmp, FakeKube() as cluster:
        for service in services:
            cluster.add_deployment(NAMESPACE, service, replicas=2)
        folder = Path(tmp) / "policies"
        folder.mkdir()
        (folder / "bench.yaml").write_text(yaml.safe_dump(policies(args.policies)))
        settings = load_settings(
            database={"url": f"sqlite:///{tmp}/bench.db"},
            incidents={"group_by": "service"},
            automation={
                "policies_dir": str(folder),
                "interval_seconds": 0.05,
                "kubernetes": {"host": cluster.url},
            },
        )
        upgrade(settings.database.url)
        db = Database(settings.database.url)
        with db.write() as session:
            _, token = auth.create_token(session, "bench", Role.WEBHOOK, actor="bench")
        with ApiServer(create_app(settings, db)) as api, httpx.Client(base_url=api.url) as http:
            headers = {"Authorization": f"Bearer {token}"}
            url = "/api/v1/webhooks/alertmanager"
            latencies = []
            for n in range(args.alerts):
                body = notification(services[n % len(services)])
                started = time.perf_counter()
                http.post(url, json=body, headers=headers).raise_for_status()
                wait_for(db, n + 1)
                latencies.append(time.perf_counter() - started)
            base = decided(db)
            started = time.perf_counter()
            for n in range(args.burst):
                body = notification(services[(args.alerts + n) % len(services)])
                http.post(url, json=body, headers=headers).raise_for_status()
            wait_for(db, base + args.burst, timeout=300)
            burst_seconds = time.perf_counter() - started
        with db.read() as session:
            incidents = session.scalar(select(func.count()).select_from(IncidentRow))
            plans = session.scalar(
                select(func.count()).select_from(DecisionRow).where(DecisionRow.plan.is_not(None))
            )
        db.dispose()
        dry_runs = sum("dryRun" in r.query for r in cluster.requests)
    report(args, latencies, burst_seconds, incidents or 0, plans or 0, dry_runs)


def report(args, latencies, burst_seconds, incidents, plans, dry_runs) -> None:
    ms = sorted(1000 * x for x in latencies)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    table = Table(title=f"alert -> decision with dry-run plan, {args.policies} policies loaded")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("notifications, one at a time", str(len(ms)))
    table.add_row("p50 ms", f"{pick(0.50):.1f}")
    table.add_row("p95 ms", f"{pick(0.95):.1f}")
    table.add_row("p99 ms", f"{pick(0.99):.1f}")
    table.add_row("max ms", f"{ms[-1]:.1f}")
    table.add_row("mean ms", f"{statistics.fmean(ms):.1f}")
    table.add_row(f"burst of {args.burst}: decisions/s", f"{args.burst / burst_seconds:.1f}")
    table.add_row(
        "incidents / decisions with a plan / dryRun=All calls",
        f"{incidents} / {plans} / {dry_runs}",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
