"""Before trusting a configuration: does every query it names find data in the configured
Prometheus? A verify query over a metric Prometheus does not have can never pass, so every
execution of its policy would wait out the timeout and roll back; a signal query without
series is a signal that is never scored. `aiops policy validate` prints these as warnings.

A verify query is checked without its threshold (`x < 0.8` is checked as `x`): the
condition may rightly be false now, but the series must exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from controlplane.collectors.prometheus import PrometheusCollector
from controlplane.config import Settings
from controlplane.domain.errors import ControlPlaneError
from controlplane.policy.schema import Policy

#: A trailing comparison with a number: `<selector> < 0.8`, `... >= bool 1e3`.
_THRESHOLD = re.compile(
    r"^(?P<series>.+?)\s*(==|!=|<=|>=|<|>)\s*(bool\s+)?[-+]?[\d.]+(e[-+]?\d+)?\s*$"
)


def series_of(query: str) -> str:
    """The query whose result must be non-empty for `query` to be able to hold."""
    found = _THRESHOLD.match(query.strip())
    return found.group("series") if found else query


def queries(settings: Settings, policies: Iterable[Policy]) -> list[tuple[str, str]]:
    """(what, PromQL) of every query the configuration runs against Prometheus."""
    named = [(f"policy {p.name!r} verify.promql", p.verify.promql) for p in policies]
    named += [(f"detection signal {s.name!r}", s.query) for s in settings.detection.signals]
    named += [(f"capacity signal {s.name!r}", s.query) for s in settings.capacity.signals]
    return [(what, q) for what, q in named if q and not q.startswith("traces:")]


def without_data(settings: Settings, policies: Iterable[Policy]) -> list[str]:
    """A warning for each query that finds no series (or cannot run) in Prometheus now."""
    if not settings.prometheus.url:
        return []
    collector = PrometheusCollector(settings.prometheus)
    warnings = []
    for what, query in queries(settings, policies):
        checked = series_of(query)
        try:
            empty = not collector.instant(checked)
        except ControlPlaneError as exc:
            warnings.append(f"{what}: {query!r} cannot run: {exc}")
            continue
        if empty:
            warnings.append(
                f"{what}: {checked!r} returns no series from {settings.prometheus.url}"
                + (" (so the verification can never pass)" if "verify" in what else "")
            )
    return warnings
