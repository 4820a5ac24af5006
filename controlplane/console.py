"""Starting the Streamlit console (`aiops console`, the demo, the browser tests): the command
line and the environment the console process gets (the API URL it calls)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from controlplane.config import Settings

CONSOLE_SCRIPT = Path(__file__).resolve().parent.parent / "dashboard" / "streamlit_app.py"


def console_command(settings: Settings, port: int) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run the console against settings' API."""
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(CONSOLE_SCRIPT),
        "--server.headless=true",
        f"--server.address={settings.console.host}",
        f"--server.port={port}",
        "--browser.gatherUsageStats=false",
        "--client.toolbarMode=minimal",
    ]
    # The child inherits this environment (PATH, the AIOPS_ settings) plus the API to call.
    env = {**os.environ, "AIOPS_CONSOLE__API_URL": settings.console_api_url}
    return command, env


def run_console(settings: Settings, port: int) -> int:
    """Run the console in the foreground until it exits; SIGTERM or SIGINT stop it (and its
    Streamlit child) instead of leaving the child serving."""
    command, env = console_command(settings, port)
    child = subprocess.Popen(command, env=env)
    previous = {
        sig: signal.signal(sig, lambda *_: child.terminate())
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        return child.wait()
    finally:
        stop_process(child)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
