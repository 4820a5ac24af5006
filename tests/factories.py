"""Builders the tests share: the console signed in (AppTest), the demo shop's capacity
settings, Alertmanager payloads (real ones, copied from ../shared into
tests/fixtures so that a clone alone runs the suite, and made-up ones), bearer headers, row
counts of the store, polling with a deadline, and a loopback HTTP receiver that records what
a webhook endpoint (Slack-compatible) or an HTTP cache would receive."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from controlplane.demo import capacity as shop
from controlplane.storage import Database
from controlplane.storage.models import (
    AlertRow,
    AuditEventRow,
    IncidentRow,
    NotificationRow,
    TimelineEntryRow,
)
from controlplane.testing.kube import serve_in_thread, stop_serving

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "alertmanager"
APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "streamlit_app.py")
WEBHOOK_URL = "/api/v1/webhooks/alertmanager"
WEBHOOK_TOKEN = "test-webhook-token-from-settings"
T = TypeVar("T")


def alertmanager_fixture(name: str) -> dict[str, Any]:
    """A payload a real Alertmanager sent (tests/fixtures/alertmanager)."""
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return payload


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def alert(
    fingerprint: str,
    *,
    service: str,
    severity: str = "warning",
    status: str = "firing",
    starts: str = "2026-11-21T01:00:00Z",
) -> dict[str, Any]:
    """One alert of a webhook notification, as Alertmanager words it."""
    return {
        "status": status,
        "labels": {"alertname": f"Alert{fingerprint}", "service": service, "severity": severity},
        "annotations": {},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-21T02:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }


def notification(alerts: list[dict[str, Any]], group_key: str) -> dict[str, Any]:
    """A webhook notification (version 4) carrying `alerts`."""
    return {
        "version": "4",
        "receiver": "aiops",
        "status": alerts[0]["status"],
        "alerts": alerts,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }


def posted_alert(name: str, service: str, pod: str, *, ends: datetime | None = None) -> dict:
    """An alert as a client POSTs it to Alertmanager's /api/v2/alerts."""
    body = {
        "labels": {"alertname": name, "service": service, "pod": pod, "severity": "critical"},
        "annotations": {"summary": f"{name} on {service}"},
        "startsAt": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "generatorURL": "http://127.0.0.1:9090/graph",
    }
    if ends:
        body["endsAt"] = ends.isoformat()
    return body


def counts(db: Database) -> dict[str, int]:
    """Rows per table of what the intake writes."""
    with db.read() as session:
        return {
            row.__tablename__: session.scalar(select(func.count()).select_from(row)) or 0
            for row in (NotificationRow, IncidentRow, AlertRow, TimelineEntryRow, AuditEventRow)
        }


def wait_for(check: Callable[[], T], *, timeout: float = 30.0, what: str) -> T:
    """Poll `check` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def shop_capacity(prometheus_url: str) -> dict[str, Any]:
    """The demo's `prometheus` and `capacity` settings, without its hourly schedule."""
    sections = shop.settings(prometheus_url)
    return {
        "prometheus": sections["prometheus"],
        "capacity": {**sections["capacity"], "schedule": ""},
    }


def signed_in(token: str, role: str, name: str, page: str = "incidents") -> AppTest:
    """The console (AppTest) signed in with `token`, on `page`."""
    app = AppTest.from_file(APP, default_timeout=30)
    app.session_state["token"] = token
    app.session_state["user"] = {"name": name, "role": role}
    app.session_state["auto_refresh"] = False  # AppTest runs scripts once; no timers
    app.run()
    if page != "overview":
        app.switch_page(f"app_pages/{page}.py")
    return app.run()


def listed(app: AppTest) -> list[tuple[int, str]]:
    """The incident list as the console shows it: (number, title) per row, in order."""
    prefix = "open-incident-"
    return [
        (int(b.key.removeprefix(prefix)), b.label.split(" ", 1)[1])
        for b in app.button
        if b.key and b.key.startswith(prefix)
    ]


def wait_until_scraped(prometheus_url: str) -> None:
    """Until Prometheus has scraped its live targets once (the demo's live shop)."""

    def scraped() -> bool:
        answer = httpx.get(
            f"{prometheus_url}/api/v1/query", params={"query": 'up{job="live"} == 1'}
        )
        return bool(answer.json()["data"]["result"])

    wait_for(scraped, timeout=60, what="Prometheus to scrape the live shop")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """A loopback HTTP server. POST: recorded, answered 200 when the path has "ok" in it,
    else 403 (a webhook that refuses). GET: an HTTP cache, answering `X-Cache: MISS` the
    first time a path is asked for and `HIT` after that."""

    posts: list[Received] = field(default_factory=list)
    cached: set[str] = field(default_factory=set)
    url: str = ""

    def __enter__(self) -> Receiver:
        handler = type("Handler", (_ReceiverHandler,), {"receiver": self})
        self._server, self.url = serve_in_thread(handler)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_serving(self._server)

    @property
    def bodies(self) -> list[Any]:
        return [p.body for p in self.posts]


class _ReceiverHandler(BaseHTTPRequestHandler):
    receiver: Receiver
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        return

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw) if raw else None
        self.receiver.posts.append(Received(self.path, dict(self.headers), body))
        self.send_response(200 if "ok" in self.path else 403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        hit = self.path in self.receiver.cached
        self.receiver.cached.add(self.path)
        self.send_response(200)
        self.send_header("X-Cache", "HIT" if hit else "MISS")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def start_aiops(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`aiops <command>` as its own process (this virtual environment's), output to `log`."""
    aiops = Path(sys.executable).with_name("aiops")
    return subprocess.Popen(
        [str(aiops), *command], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def render_manifests(overlay: str) -> list[dict[str, Any]]:
    """deploy/overlays/<overlay> rendered by `kubectl kustomize` (kustomize ships in kubectl)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is needed to render deploy/ (it ships kustomize)")
    done = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]
