"""Unit prices from an OpenCost-compatible allocation API: what a requested CPU core and a
GiB of memory cost an hour on this cluster, over a recent window.

`GET {url}/allocation/compute?window=7d&aggregate=cluster&accumulate=true` (OpenCost's API,
also served by Kubecost) answers allocation sets whose `cpuCost`/`cpuCoreHours` and
`ramCost`/`ramByteHours` are summed into the two prices. Prices are kept for
`refresh_seconds`; when the API cannot be read the last prices (or none) stay in use and the
reason is kept for the API to show.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from controlplane.domain.errors import QueryError, SourceUnavailableError

log = logging.getLogger(__name__)
GIB = 2**30


@dataclass(frozen=True)
class UnitPrices:
    cpu_core_hour: float
    memory_gib_hour: float


def fetch_prices(url: str, window: str, timeout: float = 10.0) -> UnitPrices:
    """The cluster's prices per core-hour and GiB-hour over `window` (e.g. 7d)."""
    endpoint = f"{url.rstrip('/')}/allocation/compute"
    params = {"window": window, "aggregate": "cluster", "accumulate": "true"}
    try:
        answer = httpx.get(endpoint, params=params, timeout=timeout)
    except httpx.HTTPError as exc:
        raise SourceUnavailableError(f"OpenCost at {endpoint}: {exc}") from exc
    if answer.status_code != 200:
        raise SourceUnavailableError(
            f"OpenCost at {endpoint} answered {answer.status_code}: {answer.text[:200]}"
        )
    try:
        sets = answer.json()["data"]
        allocations: list[dict[str, Any]] = [a for s in sets if s for a in s.values()]
        totals = {
            key: sum(float(a.get(key) or 0) for a in allocations)
            for key in ("cpuCost", "cpuCoreHours", "ramCost", "ramByteHours")
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise QueryError(f"OpenCost at {endpoint}: not an allocation response: {exc}") from exc
    if totals["cpuCoreHours"] <= 0 or totals["ramByteHours"] <= 0:
        raise QueryError(f"OpenCost at {endpoint}: no core-hours or byte-hours in {window}")
    return UnitPrices(
        totals["cpuCost"] / totals["cpuCoreHours"],
        totals["ramCost"] / (totals["ramByteHours"] / GIB),
    )


class OpenCostPrices:
    """The prices, read again every `refresh_seconds`; the last good ones meanwhile."""

    def __init__(self, url: str, window: str, refresh_seconds: float) -> None:
        self.url, self.window, self.refresh = url, window, refresh_seconds
        self.prices: UnitPrices | None = None
        self.error: str | None = None
        self._read_at: float | None = None

    def current(self) -> UnitPrices | None:
        now = time.monotonic()
        if self._read_at is None or now - self._read_at >= self.refresh:
            self._read_at = now
            try:
                self.prices, self.error = fetch_prices(self.url, self.window), None
            except (SourceUnavailableError, QueryError) as exc:
                self.error = str(exc)
                log.warning("prices not refreshed: %s", exc)
        return self.prices
