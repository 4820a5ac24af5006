"""The HTTP server the API runs in (`aiops serve`, and the tests' `ApiServer`): uvicorn with
every wait bounded.

- A client has `api.header_timeout_seconds` from connecting (or from its previous answer) to
  send a whole request head; a slow trickle of header bytes (slowloris) does not reset it.
- Each chunk of a request body must arrive within `api.body_timeout_seconds` (`BodyDeadline`,
  answered 408).
- At most `api.max_connections` connections are served at once; beyond that uvicorn answers
  503, and idle keep-alive connections close after 5 s.

`serve_forked` runs several API processes on one listening socket (`aiops serve --workers
N`): the kernel spreads connections over them, each has its own event loop, store pool and
intake writer, so the API uses every core. If one dies, the others are stopped too and the
command fails, so that a supervisor (Kubernetes, systemd) restarts the whole.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import socket
import sys
from collections.abc import Callable
from multiprocessing.connection import wait
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from controlplane.api.errors import BodyTooSlowError
from controlplane.config import ApiSettings


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on the request head. (uvicorn's own
    keep-alive timer is reset by every byte received, so it does not bound a trickle.)"""

    header_timeout: float = 10.0
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's head

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


class BodyDeadline:
    """ASGI middleware: each `http.request` message (a body chunk) must arrive in time."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app, self.timeout = app, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def bounded() -> Message:
            try:
                return await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                raise BodyTooSlowError(
                    f"body: no data for {self.timeout:g} s (api.body_timeout_seconds)"
                ) from None

        await self.app(scope, bounded, send)


def uvicorn_config(app: Any, api: ApiSettings, **overrides: Any) -> uvicorn.Config:
    """uvicorn's configuration for the API, bounds included."""
    protocol = type(
        "ApiHttpProtocol", (BoundedHttpProtocol,), {"header_timeout": api.header_timeout_seconds}
    )
    options: dict[str, Any] = {
        "host": api.host,
        "port": api.port,
        "http": protocol,
        "limit_concurrency": api.max_connections,
        "timeout_keep_alive": 5,
        "access_log": False,
        **overrides,
    }
    return uvicorn.Config(app, **options)


def serve_forked(build: Callable[[], uvicorn.Config], host: str, port: int, workers: int) -> int:
    """Serve with `workers` processes sharing one socket; each calls `build` after the fork
    (its own app and store connections). Returns the exit code: 0 after SIGTERM/SIGINT."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=_serve_child, args=(build, listener), name=f"api-{i}")
        for i in range(workers)
    ]
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.is_alive() and child.pid is not None:
                child.terminate()  # SIGTERM: uvicorn drains and stops

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for child in children:
            child.start()
        wait([child.sentinel for child in children])  # the first to end ends all
        stop(signal.SIGTERM, None)
        for child in children:
            child.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listener.close()
    codes = [child.exitcode or 0 for child in children]
    return 0 if stopping and all(code in (0, -signal.SIGTERM) for code in codes) else 1


def _serve_child(build: Callable[[], uvicorn.Config], listener: socket.socket) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; SIGTERM stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, until uvicorn's
    server = uvicorn.Server(build())
    server.run(sockets=[listener])
    sys.exit(0 if server.started else 1)
