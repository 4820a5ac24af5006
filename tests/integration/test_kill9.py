"""kill -9 under load: `aiops serve` (a real process) takes concurrent webhook deliveries and
is killed with SIGKILL mid-stream; restarted on the same store, the senders retry what was
not answered 2xx, as Alertmanager does. Every notification answered 2xx before the kill is
stored, and every notification ends stored exactly once. The counts are printed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from controlplane.storage.models import IncidentRow, NotificationRow
from controlplane.testing.servers import LOOPBACK, free_port, wait_until_ready
from tests.factories import WEBHOOK_TOKEN, WEBHOOK_URL, alert, bearer, notification

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SENDERS, PER_SENDER = 8, 40


def serve(settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AIOPS_DATABASE__URL": settings.database.url,
        "AIOPS_DATABASE__MIGRATE_ON_START": "false",
        "AIOPS_AUTH__WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "AIOPS_API__PORT": str(port),
        "AIOPS_INCIDENTS__GROUP_BY": "service",
    }
    aiops = Path(sys.executable).with_name("aiops")
    process = subprocess.Popen(
        [str(aiops), "serve"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )
    wait_until_ready(f"http://{LOOPBACK}:{port}/healthz", what="aiops serve")
    return process


def test_kill_9_under_load_loses_and_duplicates_nothing(settings, db, tmp_path):
    port = free_port()
    url = f"http://{LOOPBACK}:{port}{WEBHOOK_URL}"
    bodies = [
        notification([alert(f"s{s}-n{n}", service=f"svc-{s}-{n}")], f"g-{s}-{n}")
        for s in range(SENDERS)
        for n in range(PER_SENDER)
    ]
    acknowledged: set[int] = set()
    lock = threading.Lock()
    server = serve(settings, port, tmp_path / "serve.log")

    def send(index: int) -> None:
        try:
            answer = httpx.post(url, json=bodies[index], headers=bearer(WEBHOOK_TOKEN), timeout=10)
        except httpx.HTTPError:
            return  # the server died under this request: Alertmanager retries it
        if answer.status_code == 200:
            with lock:
                acknowledged.add(index)
                if len(acknowledged) == len(bodies) // 3:  # mid-stream, requests in flight
                    os.kill(server.pid, signal.SIGKILL)

    started = time.monotonic()
    with ThreadPoolExecutor(SENDERS) as pool:
        list(pool.map(send, range(len(bodies))))
    server.wait(timeout=10)
    before_kill = set(acknowledged)
    print(f"\nkill -9 after {time.monotonic() - started:.1f} s, {len(before_kill)} acknowledged")
    assert 0 < len(before_kill) < len(bodies), "the kill must land mid-stream"

    with db.read() as session:  # what was acknowledged is on disk
        stored = session.scalar(select(func.count()).select_from(NotificationRow))
    assert (stored or 0) >= len(before_kill)

    server = serve(settings, port, tmp_path / "serve.log")
    try:
        with ThreadPoolExecutor(SENDERS) as pool:  # Alertmanager retries the rest
            list(pool.map(send, [i for i in range(len(bodies)) if i not in before_kill]))
        retried_duplicates = httpx.post(url, json=bodies[0], headers=bearer(WEBHOOK_TOKEN))
        assert retried_duplicates.json()["duplicate"] is True
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    with db.read() as session:
        notifications = session.scalar(select(func.count()).select_from(NotificationRow))
        incidents = session.scalar(select(func.count()).select_from(IncidentRow))
    lost = len(bodies) - len(acknowledged)
    print(
        f"sent {len(bodies)}, acknowledged before the kill {len(before_kill)}, stored "
        f"{notifications} notifications and {incidents} incidents; lost {lost}"
    )
    assert (notifications, incidents, lost) == (len(bodies), len(bodies), 0)
