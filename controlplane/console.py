"""Starting the Streamlit console (`aiops console`, the demo, the browser tests): the command
line and the environment the console process gets (the API URL it calls)."""

from __future__ import annotations

import os
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
    command, env = console_command(settings, port)
    return subprocess.call(command, env=env)
