"""The shape the API's background loops share: run a cycle, then wait an interval or a stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from controlplane.domain.errors import ControlPlaneError

log = logging.getLogger(__name__)


async def every(
    seconds: float, cycle: Callable[[], Awaitable[object]], stop: asyncio.Event, name: str
) -> None:
    """Run `cycle` every `seconds` until `stop` is set; a failing store skips one cycle only."""
    while not stop.is_set():
        try:
            await cycle()
        except ControlPlaneError as exc:  # the store is down: try again next interval
            log.warning("%s cycle failed: %s", name, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
