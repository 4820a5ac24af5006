"""Console sign-ins that survive a browser reload.

Streamlit forgets `st.session_state` when the page reloads. The console keeps each sign-in in
this process' memory under a random id and gives the browser only that id, in a cookie
(`SameSite=Strict`, `Secure` over HTTPS): the API token never reaches the browser after the
sign-in form. A reload finds the id in `st.context.cookies`, checks the token with the API
again (a revoked token ends the session) and carries on at the same URL. Sign-out forgets
the id; a restart of the console forgets them all; a session lasts `console.session_hours`.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from controlplane.config import load_settings

COOKIE = "aiops_console_session"


@dataclass(frozen=True)
class SignIn:
    token: str
    user: dict[str, Any]
    expires_at: datetime


class Sessions:
    """Sign-ins by session id; shared by every browser tab this console process serves."""

    def __init__(self, lifetime: timedelta) -> None:
        self.lifetime = lifetime
        self._by_id: dict[str, SignIn] = {}
        self._lock = threading.Lock()

    def open(self, token: str, user: dict[str, Any], now: datetime | None = None) -> str:
        session_id = secrets.token_urlsafe(32)
        expires = (now or datetime.now(UTC)) + self.lifetime
        with self._lock:
            self._forget_expired(now)
            self._by_id[session_id] = SignIn(token, user, expires)
        return session_id

    def find(self, session_id: str, now: datetime | None = None) -> SignIn | None:
        with self._lock:
            self._forget_expired(now)
            return self._by_id.get(session_id)

    def close(self, session_id: str) -> None:
        with self._lock:
            self._by_id.pop(session_id, None)

    def _forget_expired(self, now: datetime | None) -> None:
        moment = now or datetime.now(UTC)
        for key in [k for k, v in self._by_id.items() if v.expires_at <= moment]:
            del self._by_id[key]


@st.cache_resource
def sessions() -> Sessions:
    """The console process' sign-ins (one store per process, not per browser tab)."""
    return Sessions(timedelta(hours=load_settings().console.session_hours))


def cookie_script(session_id: str | None, lifetime: timedelta) -> str:
    """The script that stores (or, for None, deletes) the session cookie in the browser."""
    secure = "; Secure" if str(st.context.url or "").startswith("https:") else ""
    value, age = (session_id, int(lifetime.total_seconds())) if session_id else ("", 0)
    return (
        f"<script>document.cookie = '{COOKIE}={value}; Path=/; Max-Age={age}; "
        f"SameSite=Strict{secure}';</script>"
    )


def remember(session_id: str | None) -> None:
    """Tell the browser its session id (or to forget it); the page shows nothing."""
    st.html(cookie_script(session_id, sessions().lifetime), unsafe_allow_javascript=True)


def end_session(why: str | None = None) -> None:
    """Sign this browser out: forget its sign-in here and in the process' store, and
    everything the session held (a confirmation, a half-typed comment: nothing of one user
    is shown to the next); the sign-in page says `why`."""
    session_id = st.session_state.get("session_id")
    if session_id:
        sessions().close(session_id)
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if why:
        st.session_state["signed_out_because"] = why
