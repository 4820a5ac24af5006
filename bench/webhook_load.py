"""Webhook intake load test: N concurrent senders post realistic Alertmanager notifications to
the API (a separate `aiops serve` process on loopback) for a fixed time, then every alert
that was acknowledged with a 2xx is looked up in the store.

Prints notifications/s, latency percentiles, the server's peak memory, and lost alerts
(must be 0). Figures only; nothing is asserted on time. With `--poison`, one more sender
posts, as fast as it can, a notification no store can keep (NUL in a label): its answers
are counted apart, and the good senders' figures show what it costs them.

The same client first loads a bare FastAPI echo of the payload (`webhook_echo.py`, plain
uvicorn with as many processes as `--workers`), so the figure that matters is the ratio to
that echo, measured in the same run on the same machine. `--workers N` runs `aiops serve
--workers N` (API processes sharing the port).

    .venv/bin/python bench/webhook_load.py --backend sqlite --senders 16 --seconds 20
    .venv/bin/python bench/webhook_load.py --backend postgresql --workers 2 --seconds 20
    .venv/bin/python bench/webhook_load.py --backend postgresql --senders 12 --seconds 20 --poison
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import create_engine, select, text, tuple_

from controlplane import auth
from controlplane.domain.models import Role
from controlplane.storage import Database, upgrade
from controlplane.storage.models import AlertRow
from controlplane.testing.servers import child_pids, free_port, wait_until_ready

POSTGRES_URL = os.environ.get(
    "AIOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SERVICES = [f"svc-{i:03d}" for i in range(200)]
ALERTS = ["HighLatency", "HighErrorRate", "PodCrashLooping", "SaturationCPU"]


def notification(seq: int, run: str) -> tuple[dict[str, Any], list[tuple[str, datetime]]]:
    """A realistic notification: one to three alerts of one service group, mostly firing."""
    service = SERVICES[seq % len(SERVICES)]
    alertname = ALERTS[seq % len(ALERTS)]
    starts = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seq)
    alerts, episodes = [], []
    for pod in range(1 + seq % 3):
        fingerprint = f"{run}{seq:08x}{pod}"
        alerts.append(
            {
                "status": "firing",
                "labels": {
                    "alertname": alertname,
                    "service": service,
                    "namespace": "prod",
                    "pod": f"{service}-{pod}",
                    "severity": ("warning", "critical")[seq % 2],
                },
                "annotations": {
                    "summary": f"{alertname} on {service}",
                    "runbook_url": "http://127.0.0.1/runbooks/latency",
                },
                "startsAt": starts.isoformat().replace("+00:00", "Z"),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
                "fingerprint": fingerprint,
            }
        )
        episodes.append((fingerprint, starts))
    payload = {
        "version": "4",
        "receiver": "aiops",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {"alertname": alertname, "service": service},
        "commonLabels": {"alertname": alertname, "service": service},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "groupKey": f'{{}}:{{alertname="{alertname}", service="{service}"}}',
        "truncatedAlerts": 0,
    }
    return payload, episodes


async def sender(
    client: aiohttp.ClientSession,
    url: str,
    deadline: float,
    start: int,
    step: int,
    run: str,
    latencies: list[float],
    acked: list[tuple[str, datetime]],
    failures: dict[int, int],
) -> None:
    seq = start
    while time.perf_counter() < deadline:
        payload, episodes = notification(seq, run)
        body = json.dumps(payload).encode()
        began = time.perf_counter()
        async with client.post(url, data=body) as response:
            await response.read()
            status = response.status
        latencies.append(time.perf_counter() - began)
        if 200 <= status < 300:
            acked.extend(episodes)
        else:
            failures[status] = failures.get(status, 0) + 1
        seq += step


async def poison_sender(
    client: aiohttp.ClientSession, url: str, deadline: float, answers: dict[int, int]
) -> None:
    payload, _ = notification(0, "poison")
    payload["alerts"][0]["labels"]["team"] = "pay\u0000ments"
    body = json.dumps(payload).encode()
    while time.perf_counter() < deadline:
        async with client.post(url, data=body) as response:
            await response.read()
            answers[response.status] = answers.get(response.status, 0) + 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def database_url(backend: str, workdir: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}", None
    schema = f"aiops_bench_{uuid.uuid4().hex[:8]}"
    with create_engine(POSTGRES_URL).begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", schema


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(
    url: str,
    token: str,
    senders: int,
    seconds: float,
    run: str,
    poison: dict[int, int] | None = None,
) -> tuple[list[float], list[tuple[str, datetime]], dict[int, int], float]:
    latencies: list[float] = []
    acked: list[tuple[str, datetime]] = []
    failures: dict[int, int] = {}
    # aiohttp, not httpx: the client shares this 2-core machine and must not be the bottleneck.
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=senders + 1)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=30)
    ) as client:
        began = time.perf_counter()
        deadline = began + seconds
        extra = [] if poison is None else [poison_sender(client, url, deadline, poison)]
        await asyncio.gather(
            *(
                sender(client, url, deadline, i, senders, run, latencies, acked, failures)
                for i in range(senders)
            ),
            *extra,
        )
        elapsed = time.perf_counter() - began
    return latencies, acked, failures, elapsed


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_echo(senders: int, seconds: float, warmup: float, workers: int) -> tuple[float, float]:
    """(notifications/s, p99 seconds) of the bare echo, loaded exactly like the API."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(__file__).parent)]
    command += ["webhook_echo:app", "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen([*command, "--log-level", "warning", "--no-access-log"])
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", what="echo")
        endpoint = f"http://127.0.0.1:{port}/api/v1/webhooks/alertmanager"
        asyncio.run(load(endpoint, "echo", senders, warmup, "echo-w"))
        latencies, _, failures, elapsed = asyncio.run(load(endpoint, "echo", senders, seconds, "e"))
    finally:
        server.terminate()
        server.wait(timeout=10)
    return (len(latencies) - sum(failures.values())) / elapsed, percentile(latencies, 99)


def count_stored(db: Database, episodes: list[tuple[str, datetime]]) -> int:
    found = 0
    with db.read() as session:
        for i in range(0, len(episodes), 500):
            chunk = episodes[i : i + 500]
            found += len(
                session.execute(
                    select(AlertRow.alert_id).where(
                        tuple_(AlertRow.fingerprint, AlertRow.starts_at).in_(chunk)
                    )
                ).all()
            )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--poison", action="store_true", help="one more sender, unstorable")
    parser.add_argument("--workers", type=int, default=1, help="API processes (aiops serve)")
    parser.add_argument("--no-echo", action="store_true", help="skip the echo baseline")
    args = parser.parse_args()
    echo = (
        None
        if args.no_echo
        else measure_echo(args.senders, args.seconds, args.warmup, args.workers)
    )

    with tempfile.TemporaryDirectory() as tmp:
        url, schema = database_url(args.backend, Path(tmp))
        upgrade(url)
        db = Database(url)
        with db.write() as session:
            _, token = auth.create_token(session, "bench", Role.WEBHOOK, actor="bench")
        port = free_port()
        env = {**os.environ, "AIOPS_DATABASE__URL": url, "AIOPS_LOG_LEVEL": "WARNING"}
        command = ["serve", "--port", str(port), "--workers", str(args.workers)]
        server = subprocess.Popen([sys.executable, "-m", "controlplane.cli", *command], env=env)
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/readyz", what="API")
            endpoint = f"http://127.0.0.1:{port}/api/v1/webhooks/alertmanager"
            run = uuid.uuid4().hex[:6]
            asyncio.run(load(endpoint, token, args.senders, args.warmup, run + "w"))
            poison: dict[int, int] | None = {} if args.poison else None
            latencies, acked, failures, elapsed = asyncio.run(
                load(endpoint, token, args.senders, args.seconds, run, poison)
            )
            rss = sum(peak_rss_mib(pid) for pid in [server.pid, *child_pids(server.pid)])
            cpu = sum(cpu_seconds(pid) for pid in [server.pid, *child_pids(server.pid)])
        finally:
            server.terminate()
            server.wait(timeout=10)
        stored = count_stored(db, acked)
        db.dispose()
        if schema:
            with create_engine(POSTGRES_URL).begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))

    ok = len(latencies) - sum(failures.values())
    print(
        f"backend={args.backend} workers={args.workers} senders={args.senders} "
        f"seconds={args.seconds:.0f} cpus={os.cpu_count()}"
    )
    print(f"notifications: {len(latencies)} sent, {ok} acknowledged (2xx), failures={failures}")
    print(f"throughput: {ok / elapsed:.0f} notifications/s ({len(acked) / elapsed:.0f} alerts/s)")
    if echo is not None:
        rate, p99 = echo
        print(
            f"echo baseline (same client, {args.workers} uvicorn process(es)): {rate:.0f}/s, "
            f"p99 {p99 * 1000:.1f} ms; aiops serve = {ok / elapsed / rate:.1%} of the echo"
        )
    print(
        "latency ms: p50={:.1f} p95={:.1f} p99={:.1f} max={:.1f}".format(
            *(percentile(latencies, q) * 1000 for q in (50, 95, 99, 100))
        )
    )
    per = cpu / len(latencies) * 1000
    print(f"server peak RSS: {rss:.0f} MiB; CPU {cpu:.1f} s ({per:.2f} ms a notification)")
    if poison is not None:
        print(f"poison sender's answers: {poison} (good senders' failures: {failures})")
    print(f"lost: {len(acked) - stored} of {len(acked)} acknowledged alerts missing from the store")


if __name__ == "__main__":
    main()
