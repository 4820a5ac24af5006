"""Live parts of pages: `live_fragment` re-runs a page's live part every refresh interval (the
rest of the page, and the user's filters and selections, stay as they are), and ends the
sign-in when the API stops accepting the token, wherever the fragment runs."""

from __future__ import annotations

import functools
from collections.abc import Callable

import streamlit as st

from dashboard.api_client import SessionEndedError
from dashboard.sessions import end_session

INTERVAL_SECONDS = 15


def refresh_interval() -> int | None:
    """Seconds between refreshes, or None when the user turned auto-refresh off."""
    return INTERVAL_SECONDS if st.session_state.get("auto_refresh", True) else None


def live_fragment(
    every: int | None = None,
) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """`st.fragment` re-running every `every` seconds (default: the refresh interval). A
    fragment re-run is not inside the page's run, so a revoked token is handled here too."""

    def wrap(body: Callable[[], None]) -> Callable[[], None]:
        @functools.wraps(body)
        def guarded() -> None:
            try:
                body()
            except SessionEndedError as exc:
                end_session(f"Signed out: the API refused the token: {exc}.")
                st.rerun(scope="app")

        return st.fragment(guarded, run_every=every or refresh_interval())

    return wrap
