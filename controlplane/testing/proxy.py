"""A TCP proxy on loopback for fault tests: forwards to a real server, or cuts every
connection (and refuses new ones), or black-holes them (accepts and reads, never answers:
a store that stops answering without closing its connections). Back to `forward()`, the
connections held through a black hole are closed, as after a network partition heals."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Literal, Self

from controlplane.testing.servers import LOOPBACK

Mode = Literal["forward", "blackhole", "cut"]


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self.target = (LOOPBACK, target_port)
        self.mode: Mode = "forward"
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._reset = threading.Event()  # the serving thread closes every connection
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tcp-proxy", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def forward(self) -> None:
        with self._lock:
            held = self.mode == "blackhole"
            self.mode = "forward"
        if held:
            self._close_all()

    def blackhole(self) -> None:
        with self._lock:
            self.mode = "blackhole"

    def cut(self) -> None:
        with self._lock:
            self.mode = "cut"
        self._close_all()

    def _close_all(self) -> None:
        """Close every connection (done by the serving thread, which owns the sockets)."""
        self._reset.set()
        while self._reset.is_set() and self._thread.is_alive():
            self._stop.wait(0.01)

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        self._listener.setblocking(False)
        selector.register(self._listener, selectors.EVENT_READ)
        peers: dict[socket.socket, socket.socket | None] = {}
        while not self._stop.is_set():
            if self._reset.is_set():
                for held in list(peers):
                    self._drop(selector, peers, held)
                self._reset.clear()
            for key, _ in selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept(selector, peers)
                    continue
                if sock not in peers:
                    continue  # dropped earlier in this round
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                peer = peers.get(sock)
                if not data:
                    self._drop(selector, peers, sock)
                elif self.mode == "forward" and peer is not None:
                    with contextlib.suppress(OSError):
                        peer.sendall(data)
                # blackhole: the bytes are read and dropped; nothing is answered
        for held in list(peers):
            self._drop(selector, peers, held)
        selector.close()

    def _accept(
        self, selector: selectors.BaseSelector, peers: dict[socket.socket, socket.socket | None]
    ) -> None:
        client, _ = self._listener.accept()
        if self.mode == "cut":
            client.close()
            return
        server = None
        if self.mode == "forward":
            server = socket.create_connection(self.target, timeout=5)
            peers[server] = client
            selector.register(server, selectors.EVENT_READ)
        peers[client] = server
        selector.register(client, selectors.EVENT_READ)

    def _drop(
        self,
        selector: selectors.BaseSelector,
        peers: dict[socket.socket, socket.socket | None],
        sock: socket.socket,
    ) -> None:
        if sock not in peers:
            return
        for one in (sock, peers.pop(sock)):
            if one is None:
                continue
            peers.pop(one, None)
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(one)
            with contextlib.suppress(OSError):
                one.close()
