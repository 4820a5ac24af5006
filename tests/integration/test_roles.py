"""Roles: `aiops serve --no-loops` serves the API and runs no loop; `aiops worker` runs the
loops with no API. Two real processes on one store: an alert delivered to the API is acted on
by the worker's policy runner (a notify policy posting to a loopback receiver), never by the
API process, and SIGTERM stops the worker cleanly."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from controlplane.storage import Database, upgrade
from controlplane.storage.models import NotificationRow
from controlplane.testing.servers import LOOPBACK, child_pids, free_port, wait_until_ready
from tests.factories import (
    WEBHOOK_TOKEN,
    WEBHOOK_URL,
    Receiver,
    alert,
    bearer,
    notification,
    start_aiops,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _environment(settings, policies: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "AIOPS_DATABASE__URL": settings.database.url,
        "AIOPS_DATABASE__MIGRATE_ON_START": "false",
        "AIOPS_AUTH__WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "AIOPS_API__PORT": str(port),
        "AIOPS_INCIDENTS__GROUP_BY": "service",
        "AIOPS_AUTOMATION__POLICIES_DIR": str(policies),
        "AIOPS_AUTOMATION__INTERVAL_SECONDS": "0.2",
    }


def test_the_worker_acts_and_the_api_only_serves(settings, tokens, tmp_path):
    upgrade(settings.database.url)
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    with Receiver() as receiver:
        policies = tmp_path / "policies"
        policies.mkdir()
        policy = {
            "name": "page-checkout",
            "match": {"service": ["checkout"]},
            "action": {"type": "notify", "url": f"{receiver.url}/ok", "text": "{summary}"},
            "mode": "auto",
        }
        (policies / "page.yaml").write_text(yaml.safe_dump({"policies": [policy]}))
        env = _environment(settings, policies, port)
        api = start_aiops(["serve", "--no-loops"], env, tmp_path / "serve.log")
        try:
            wait_until_ready(f"{base}/healthz", what="aiops serve --no-loops")
            assert httpx.get(f"{base}/healthz").json()["loops"] == []
            body = notification([alert("HighLatency", service="checkout")], "g-checkout")
            sent = httpx.post(f"{base}{WEBHOOK_URL}", json=body, headers=bearer(WEBHOOK_TOKEN))
            assert sent.status_code == 200, sent.text
            viewer = bearer(tokens["viewer"])
            time.sleep(3)  # 15 policy intervals: the API process alone never decides
            assert httpx.get(f"{base}/api/v1/decisions", headers=viewer).json()["data"] == []
            assert receiver.posts == []
            worker = start_aiops(["worker"], env, tmp_path / "worker.log")
            try:
                wait_for(lambda: receiver.bodies, timeout=60, what="the worker's notification")
                (decision,) = httpx.get(f"{base}/api/v1/decisions", headers=viewer).json()["data"]
                assert decision["policy"] == "page-checkout"
                assert len(receiver.bodies) == 1
            finally:
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()
        finally:
            api.send_signal(signal.SIGTERM)
            api.wait(timeout=30)


def test_serve_with_several_processes_shares_one_port_and_stops_cleanly(settings, tmp_path):
    if settings.database.url.startswith("sqlite"):
        pytest.skip("PostgreSQL only: several API processes share the store")
    upgrade(settings.database.url)
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    env = _environment(settings, tmp_path, port)
    api = start_aiops(["serve", "--no-loops", "--workers", "2"], env, tmp_path / "serve.log")
    try:
        wait_until_ready(f"{base}/readyz", what="aiops serve --workers 2")
        assert len(child_pids(api.pid)) == 2
        for i in range(20):  # connections spread over both; every delivery is stored
            body = notification([alert(f"A{i}", service="checkout")], f"g-{i}")
            sent = httpx.post(f"{base}{WEBHOOK_URL}", json=body, headers=bearer(WEBHOOK_TOKEN))
            assert sent.status_code == 200, sent.text
    finally:
        api.send_signal(signal.SIGTERM)
        code = api.wait(timeout=30)
    assert code == 0, (tmp_path / "serve.log").read_text()
    with Database(settings.database.url).read() as session:
        assert session.scalar(select(func.count()).select_from(NotificationRow)) == 20
