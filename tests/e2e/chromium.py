"""Headless Chromium (Debian package) driven over the DevTools protocol, for browser tests.

Flags and the wait strategy follow ../shared/docs/real-components.md: no sandbox, no GPU, no
network but loopback (a dead proxy), a fresh profile; a page is ready when its expected text is
on screen and Streamlit's running indicator (`stStatusWidget`) is gone.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websocket import WebSocket, create_connection

from controlplane.testing.servers import free_port

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=http://127.0.0.1:9",
    "--window-size=1400,1000",
]


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self._ids = itertools.count(1)
        self._profile = tempfile.TemporaryDirectory(
            prefix="aiops-chromium-", ignore_cleanup_errors=True
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: WebSocket | None = None

    def __enter__(self) -> Chromium:
        self._process = subprocess.Popen(
            [
                self.binary,
                *FLAGS,
                f"--remote-debugging-port={self.port}",
                f"--user-data-dir={self._profile.name}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes go with it
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                pages = httpx.get(f"http://127.0.0.1:{self.port}/json/list", timeout=1).json()
                target = next(p for p in pages if p["type"] == "page")
                break
            except (httpx.HTTPError, StopIteration, ValueError):
                if time.monotonic() > deadline:
                    raise TimeoutError("Chromium did not open its DevTools port") from None
                time.sleep(0.2)
        self._socket = create_connection(
            target["webSocketDebuggerUrl"], suppress_origin=True, timeout=30
        )
        self.send("Page.enable")
        return self

    def __exit__(self, *_: object) -> None:
        if self._socket is not None:
            self._socket.close()
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=10)
        self._profile.cleanup()

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._socket is not None
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def reload(self) -> None:
        self.send("Page.reload")

    def wait_for_text(self, text: str, timeout: float = 30) -> float:
        """Seconds until `text` is on the page and Streamlit has finished the run: no running
        indicator, no stale element left from the previous run, no loading skeleton."""
        started = time.monotonic()
        check = (
            f"document.body && document.body.innerText.includes({json.dumps(text)}) && "
            "!document.querySelector('[data-testid=\"stStatusWidget\"]') && "
            "!document.querySelector('[data-stale=\"true\"]') && "
            "!document.querySelector('[data-testid=\"stSkeleton\"]')"
        )
        settled = 0
        while settled < 2:  # the same answer twice, 100 ms apart: the run is over
            settled = settled + 1 if self._evaluate_while_loading(check) else 0
            if time.monotonic() - started > timeout:
                body = self.evaluate("document.body ? document.body.innerText.slice(0, 500) : ''")
                raise TimeoutError(f"{text!r} not on the page after {timeout:.0f} s: {body!r}")
            time.sleep(0.1)
        return time.monotonic() - started - 0.1

    def _evaluate_while_loading(self, expression: str) -> Any:
        """`evaluate`, but a page still navigating (a reload) answers None, not an error."""
        try:
            return self.evaluate(expression)
        except RuntimeError as exc:
            if "navigated or closed" in str(exc) or "context was destroyed" in str(exc):
                return None
            raise

    def type_into(self, selector: str, text: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def click_text(self, tag: str, text: str, timeout: float = 15) -> None:
        """Click the first `tag` element whose visible text is exactly `text`, waiting up to
        `timeout` seconds for it (on a loaded machine a page's parts arrive one by one: a
        caption can be on the page before the table rows below it)."""
        click = (
            f"(() => {{ const e = [...document.querySelectorAll({json.dumps(tag)})]"
            f".find(x => x.innerText.trim() === {json.dumps(text)}); if (e) e.click(); "
            "return !!e; })()"
        )
        deadline = time.monotonic() + timeout
        while not self._evaluate_while_loading(click):
            if time.monotonic() > deadline:
                raise LookupError(f"no <{tag}> with text {text!r} after {timeout:.0f} s")
            time.sleep(0.1)

    def tick(self, label: str) -> None:
        """Tick the Streamlit checkbox labelled `label` with a real mouse click on its label
        (the input is hidden, and the checkbox reacts to pointer events, not to `click()`)."""
        box = self.evaluate(
            "(() => { const e = [...document.querySelectorAll('label')]"
            f".find(x => x.innerText.trim() === {json.dumps(label)}); if (!e) return null; "
            "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
            "return [r.left + 10, r.top + r.height / 2]; })()"
        )
        if box is None:
            raise LookupError(f"no checkbox labelled {label!r}")
        x, y = box
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
