"""What a page does when the data it is built on cannot be loaded: say so, and stop there."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from dashboard.api_client import ApiError

T = TypeVar("T")


def load_or_stop(what: str, call: Callable[[], T]) -> T:
    """`call()`'s answer from the API; on an API error, an error naming `what`, and the page
    stops (the sidebar and navigation stay)."""
    try:
        return call()
    except ApiError as exc:
        st.error(f"Could not load {what}: {exc}")
        st.stop()
