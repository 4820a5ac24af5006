"""Prometheus source: PromQL range queries over HTTP via `prometheus-api-client`.

Owns the rules for talking to Prometheus: one series per signal; a range longer than
`max_points` steps (Prometheus refuses more than 11,000 points per series) is split into
chunks and stitched back; bearer or basic auth, TLS verification or a private CA; a timeout per
request. An unreachable server (or a 5xx) is `SourceUnavailableError`, a refused query (bad
PromQL, 4xx) is `QueryError`: both mean "no data", never "anomaly". The client is synchronous
(requests), so `collect` runs it in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from controlplane.config import PrometheusSettings
from controlplane.domain.errors import QueryError, SourceUnavailableError
from controlplane.domain.series import MetricSeries


def plan_chunks(
    start: datetime, end: datetime, step_seconds: int, max_points: int
) -> list[tuple[datetime, datetime]]:
    """Split [start, end] into ranges of at most `max_points` points at `step_seconds`."""
    if end <= start:
        return [(start, end)]
    span = timedelta(seconds=step_seconds * (max_points - 1))
    chunks = []
    cursor = start
    while cursor <= end:
        stop = min(cursor + span, end)
        chunks.append((cursor, stop))
        cursor = stop + timedelta(seconds=step_seconds)
    return chunks


class PrometheusCollector:
    """Runs PromQL range queries against one Prometheus server."""

    def __init__(self, settings: PrometheusSettings) -> None:
        self.settings = settings
        session = requests.Session()
        session.verify = str(settings.ca_file) if settings.ca_file else settings.verify_tls
        headers = {}
        if settings.bearer_token is not None:
            headers["Authorization"] = f"Bearer {settings.bearer_token.get_secret_value()}"
        auth = None
        if settings.username and settings.password is not None:
            auth = (settings.username, settings.password.get_secret_value())
        self.client = PrometheusConnect(
            url=settings.url.rstrip("/"),
            headers=headers,
            disable_ssl=not settings.verify_tls,
            auth=auth,
            session=session,
            # The library's default (three retries, exponential backoff) stalls a detection
            # cycle for ~10 s per dead server; the next cycle is the retry.
            retry=Retry(total=1, backoff_factor=0.2, status_forcelist=(502, 503, 504)),
            timeout=settings.timeout_seconds,
        )

    async def collect(
        self, query: str, start: datetime, end: datetime, step_seconds: int
    ) -> list[MetricSeries]:
        return await asyncio.to_thread(self.query_range, query, start, end, step_seconds)

    def query_range(
        self, query: str, start: datetime, end: datetime, step_seconds: int
    ) -> list[MetricSeries]:
        """Every series the query returns over [start, end], chunked under the point limit."""
        parts: dict[str, tuple[dict[str, str], list[list[Any]]]] = {}
        for lo, hi in plan_chunks(start, end, step_seconds, self.settings.max_points):
            for item in self._request(query, lo, hi, step_seconds):
                labels = item.get("metric", {})
                key = json.dumps(labels, sort_keys=True)
                parts.setdefault(key, (labels, []))[1].extend(item.get("values", []))
        return [_series(query, labels, values) for labels, values in parts.values()]

    def instant(self, query: str) -> list[dict[str, Any]]:
        """An instant query's result vector (empty: the condition does not hold)."""
        return self._ask(query, lambda: self.client.custom_query(query))

    def _request(
        self, query: str, start: datetime, end: datetime, step_seconds: int
    ) -> list[dict[str, Any]]:
        return self._ask(
            query,
            lambda: self.client.custom_query_range(
                query, start_time=start, end_time=end, step=f"{step_seconds}s"
            ),
        )

    def _ask(self, query: str, call: Callable[[], Any]) -> list[dict[str, Any]]:
        where = f"Prometheus at {self.settings.url}"
        try:
            result: list[dict[str, Any]] = call()
        except requests.RequestException as exc:
            raise SourceUnavailableError(f"{where} unreachable: {type(exc).__name__}") from None
        except PrometheusApiClientException as exc:
            message = str(exc)
            if "HTTP Status Code 4" in message:
                raise QueryError(f"{where} refused query {query!r}: {message[:300]}") from None
            raise SourceUnavailableError(f"{where} failed: {message[:300]}") from None
        return result


def _series(query: str, labels: dict[str, str], values: list[list[Any]]) -> MetricSeries:
    by_time = {float(t): v for t, v in values}  # chunk edges never overlap, but be safe
    times = np.array(sorted(by_time), dtype=np.float64)
    numbers = np.array([_number(by_time[t]) for t in times], dtype=np.float64)
    stamps = (times * 1e9).astype("int64").astype("datetime64[ns]")
    name = labels.get("__name__") or query
    return MetricSeries(name, stamps, numbers, dict(labels))


def _number(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else math.nan
