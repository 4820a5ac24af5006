"""`aiops console` as an operator runs it: stopped with SIGTERM (kill, systemd, CI), it takes
its Streamlit child down with it instead of leaving it serving."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from controlplane.testing.servers import free_port
from tests.factories import wait_for

pytestmark = pytest.mark.integration
AIOPS = Path(sys.executable).with_name("aiops")


def children(pid: int) -> list[int]:
    listed = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in listed.stdout.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not (state.exists() and state.read_text().split()[2] == "Z")  # a zombie is gone


def test_sigterm_stops_the_streamlit_child(tmp_path):
    port = free_port()
    env = {**os.environ, "AIOPS_DATABASE__URL": f"sqlite:///{tmp_path / 'aiops.db'}"}
    console = subprocess.Popen(
        [str(AIOPS), "console", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def serving() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/_stcore/health").is_success
            except httpx.HTTPError:
                return False

        wait_for(serving, timeout=60, what="the console to serve")
        (child,) = children(console.pid)
        console.send_signal(signal.SIGTERM)
        console.wait(timeout=30)
        deadline = time.monotonic() + 30
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(child), "the Streamlit child outlived `aiops console`"
        assert not serving()
    finally:
        for pid in children(console.pid):
            os.kill(pid, signal.SIGKILL)
        console.kill()
        console.wait()
