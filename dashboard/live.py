"""Auto-refresh of live pages: a sidebar toggle, kept in the session, and the interval that
`st.fragment(run_every=...)` re-runs the live part of a page with (the rest of the page, and
the user's filters and selections, stay as they are)."""

from __future__ import annotations

import streamlit as st

INTERVAL_SECONDS = 15


def refresh_interval() -> int | None:
    """Seconds between refreshes, or None when the user turned auto-refresh off."""
    return INTERVAL_SECONDS if st.session_state.get("auto_refresh", True) else None
