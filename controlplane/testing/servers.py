"""Running the real pieces on loopback: the API in a uvicorn thread, a real Alertmanager
process routed to the webhook, a real Prometheus with history backfilled, and the Streamlit
console. Used by `aiops demo` and by the test fixtures, so the demo and the tests exercise
the same wiring.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Self

import httpx
import uvicorn
import yaml
from fastapi import FastAPI

from controlplane.api.server import uvicorn_config
from controlplane.config import Settings
from controlplane.console import console_command, stop_process
from controlplane.domain.errors import ConfigError, TemporaryError

LOOPBACK = "127.0.0.1"
SCRAPE_SECONDS = 5
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (e.g. the API processes of `serve --workers N`)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@contextmanager
def metrics_target(exposition: Callable[[], bytes]) -> Iterator[str]:
    """A loopback `/metrics` endpoint serving `exposition()` (Prometheus text) on every
    scrape, for as long as the block lasts; yields its host:port, as a scrape config names
    it."""
    from controlplane.testing.kube import serve_in_thread, stop_serving

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_GET(self) -> None:
            body = exposition()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server, url = serve_in_thread(Handler)
    try:
        yield url.removeprefix("http://")
    finally:
        stop_serving(server)


def ensure_port_free(port: int, what: str) -> None:
    """Fail with a clear message instead of talking to whatever already listens there."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            raise ConfigError(
                f"{what} port {port} on {LOOPBACK} is already in use; stop what "
                f"listens there or choose another port"
            ) from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_ready(
    url: str,
    *,
    timeout: float = 20.0,
    what: str = "server",
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll `url` until it answers 200; fail at once if `process` exits first."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-500:] if log and log.exists() else ""
            raise TemporaryError(
                f"{what} exited with code {process.returncode} before it was ready: {tail.strip()}"
            )
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
            last = "not ready"
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TemporaryError(f"{what} at {url} not ready after {timeout:.0f} s: {last}")


def launch(
    command: list[str],
    *,
    log: Path | None,
    ready_url: str,
    what: str,
    env: dict[str, str] | None = None,
    timeout: float = 20.0,
) -> subprocess.Popen[bytes]:
    """Start a server process logging to `log` and wait until `ready_url` answers 200.

    A process that dies or never gets ready is stopped, and TemporaryError says why.
    """
    out = log.open("wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(ready_url, timeout=timeout, what=what, process=process, log=log)
    except TemporaryError:
        stop_process(process)
        raise
    return process


class ApiServer:
    """The FastAPI app served by uvicorn in a daemon thread, on a loopback port."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        settings: Settings = app.state.settings
        config = uvicorn_config(
            app, settings.api, host=LOOPBACK, port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="api-server", daemon=True)

    def __enter__(self) -> Self:
        ensure_port_free(self.port, "API")
        self._thread.start()
        wait_until_ready(f"{self.url}/healthz", what="API")
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class Alertmanager:
    """A real Alertmanager process whose only receiver is our webhook, with a bearer token."""

    def __init__(
        self,
        workdir: Path,
        *,
        webhook_url: str,
        token: str,
        port: int | None = None,
        group_by: tuple[str, ...] = ("alertname", "service"),
        group_wait: str = "1s",
        group_interval: str = "2s",
        repeat_interval: str = "1h",
    ) -> None:
        self.binary = find_alertmanager()
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.config = {
            "route": {
                "receiver": "aiops",
                "group_by": list(group_by),
                "group_wait": group_wait,
                "group_interval": group_interval,
                "repeat_interval": repeat_interval,
            },
            "receivers": [
                {
                    "name": "aiops",
                    "webhook_configs": [
                        {
                            "url": webhook_url,
                            "send_resolved": True,
                            "http_config": {
                                "authorization": {"type": "Bearer", "credentials": token}
                            },
                        }
                    ],
                }
            ],
        }
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        ensure_port_free(self.port, "Alertmanager")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_file = self.workdir / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(self.config))
        self._process = launch(
            [
                self.binary,
                f"--config.file={config_file}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                f"--web.external-url={self.url}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            log=self.workdir / "alertmanager.log",
            ready_url=f"{self.url}/-/ready",
            what="Alertmanager",
        )
        return self

    def __exit__(self, *_: object) -> None:
        stop_process(self._process)

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Push alerts as Prometheus would (`POST /api/v2/alerts`)."""
        response = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5)
        response.raise_for_status()


def find_alertmanager() -> str:
    for name in ALERTMANAGER_BINARIES:
        path = shutil.which(name)
        if path:
            return path
    raise ConfigError(
        "Alertmanager is not installed: install the Debian package 'prometheus-alertmanager' "
        "(make test / make demo do this when run as root)"
    )


class Console:
    """The Streamlit console as a child process (for the demo and browser tests)."""

    def __init__(
        self, settings: Settings, port: int | None = None, log: Path | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://{settings.console.host}:{self.port}"
        self.command, self.env = console_command(settings, self.port)
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        ensure_port_free(self.port, "console")
        self._process = launch(
            self.command,
            env=self.env,
            log=self.log,
            ready_url=f"{self.url}/_stcore/health",
            what="console",
            timeout=60,
        )
        return self

    def __exit__(self, *_: object) -> None:
        stop_process(self._process)


def openmetrics(series: Mapping[tuple[str, str], Iterable[float]], stamps: Sequence[float]) -> str:
    """OpenMetrics text (`Prometheus(history=...)`) of gauges keyed by (metric, service), one
    sample per Unix timestamp in `stamps`."""
    families: dict[str, list[str]] = {}  # a metric's samples must be contiguous
    for (metric, service), values in series.items():
        families.setdefault(metric, []).extend(
            f'{metric}{{service="{service}"}} {v:.10g} {t:.0f}'
            for v, t in zip(values, stamps, strict=True)
        )
    lines = [f"# TYPE {m} gauge\n" + "\n".join(samples) for m, samples in families.items()]
    return "\n".join([*lines, "# EOF", ""])


class Prometheus:
    """A real Prometheus (Debian package) on loopback, optionally with backfilled history and
    live targets it scrapes.

    History is OpenMetrics text turned into TSDB blocks by `promtool tsdb create-blocks-from
    openmetrics` before the server starts (with --max-block-duration=720h it takes under a
    second for days of data; without it, tens of seconds).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        history: str | None = None,
        port: int | None = None,
        scrape: Sequence[str] = (),
    ) -> None:
        self.workdir = workdir
        self.history = history
        self.scrape = list(scrape)  # host:port targets, scraped every SCRAPE_SECONDS
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        binary, promtool = shutil.which("prometheus"), shutil.which("promtool")
        if not binary or not promtool:
            raise ConfigError(
                "Prometheus is not installed: install the Debian package 'prometheus' "
                "(make system-deps does it when run as root)"
            )
        ensure_port_free(self.port, "Prometheus")
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        if self.history:
            source = self.workdir / "history.om"
            source.write_text(self.history)
            subprocess.run(
                [
                    promtool,
                    "tsdb",
                    "create-blocks-from",
                    "openmetrics",
                    "--max-block-duration=720h",
                    str(source),
                    str(data),
                ],
                check=True,
                capture_output=True,
            )
        config = self.workdir / "prometheus.yml"
        scrape = {
            "scrape_configs": [
                {
                    "job_name": "live",
                    "scrape_interval": f"{SCRAPE_SECONDS}s",
                    "static_configs": [{"targets": self.scrape}],
                    # The samples continue the backfilled series: same labels, no job/instance.
                    "metric_relabel_configs": [{"action": "labeldrop", "regex": "job|instance"}],
                }
            ]
            if self.scrape
            else []
        }
        config.write_text(yaml.safe_dump({"global": {"scrape_interval": "15s"}, **scrape}))
        self._process = launch(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--storage.tsdb.retention.time=400d",
                f"--web.external-url={self.url}",
                "--log.level=warn",
            ],
            log=self.workdir / "prometheus.log",
            ready_url=f"{self.url}/-/ready",
            what="Prometheus",
        )
        return self

    def __exit__(self, *_: object) -> None:
        stop_process(self._process)
