"""Collectors: where series and spans come from, as plain typed values.

- `prometheus.PrometheusCollector`: PromQL over HTTP (instant and range queries, chunked to
  Prometheus' 11,000-point limit), errors as `SourceUnavailableError` / `QueryError`;
- `traces`: OTLP spans (protobuf or JSON) to span rows, the RED series and dependency edges
  derived from them;
- `file`: CSV series for the offline commands.

The detection loop reads each signal through a `SignalSource` (the contract below): PromQL
signals through `PrometheusSource`, `traces:<service>:<metric>` signals through
`TraceSource`. Adding a source = a class with `fetch` and one entry in the scheduler's
source table.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Protocol

from controlplane.collectors import traces
from controlplane.collectors.prometheus import PrometheusCollector
from controlplane.config import SignalSettings
from controlplane.domain.errors import QueryError
from controlplane.domain.series import MetricSeries
from controlplane.storage import Database


class SignalSource(Protocol):
    """Where a signal's points come from: one series for [start, end], or None when the
    source has no data. Unavailable sources raise `SourceUnavailableError`; queries that can
    never succeed raise `QueryError`."""

    async def fetch(
        self, signal: SignalSettings, start: datetime, end: datetime
    ) -> MetricSeries | None: ...


class PrometheusSource:
    """Signals whose `query` is PromQL: a range query, which must give one series."""

    def __init__(self, collector: PrometheusCollector) -> None:
        self.collector = collector

    async def fetch(
        self, signal: SignalSettings, start: datetime, end: datetime
    ) -> MetricSeries | None:
        found = await self.collector.collect(signal.query, start, end, signal.step_seconds)
        if len(found) > 1:
            raise QueryError(
                f"signal {signal.name!r}: query returned {len(found)} series; aggregate it to "
                f"one (e.g. sum by (service) (...))"
            )
        return found[0] if found else None


class TraceSource:
    """`traces:<service>:<metric>` signals, read from the RED rows the OTLP receiver writes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def fetch(
        self, signal: SignalSettings, start: datetime, end: datetime
    ) -> MetricSeries | None:
        _, service, metric = signal.query.split(":", 2)

        def read() -> MetricSeries:
            with self.db.read() as session:
                return traces.red_series(session, service, metric, start, end)

        series = await asyncio.to_thread(read)  # a database read: off the event loop
        return series if len(series) else None


__all__ = ["PrometheusSource", "SignalSource", "TraceSource"]
