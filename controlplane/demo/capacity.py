"""The demo's Prometheus workload: two weeks of resource history for the shop, in a real
Prometheus, forecast into a capacity report when the demo starts and then every hour, and
watched by the detection scheduler.

checkout CPU grows toward its limit and inventory's disk fills up (both become CapacityRisk
incidents); payments traffic is steady (a replica recommendation); search memory is flat.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np

from controlplane.testing.servers import openmetrics

DAYS = 14
STEP_MINUTES = 5

SIGNALS: list[dict[str, Any]] = [
    {
        "name": "checkout-cpu",
        "service": "checkout",
        "resource": "cpu",
        "unit": "cores",
        "query": 'demo_cpu_cores{service="checkout"}',
        "limit": 4.1,
    },
    {
        "name": "inventory-disk",
        "service": "inventory",
        "resource": "disk",
        "unit": "GiB",
        "query": 'demo_disk_used_gib{service="inventory"}',
        "limit": 200,
    },
    {
        "name": "payments-requests",
        "service": "payments",
        "resource": "requests",
        "unit": "req/s",
        "query": 'demo_requests_per_second{service="payments"}',
        "limit": 1000,
        "replicas": {
            "capacity_per_replica": 50,
            "current": 3,
            "min": 2,
            "max": 20,
            "cpu_cores": 0.5,
            "memory_gib": 1,
        },
    },
    {
        "name": "search-memory",
        "service": "search",
        "resource": "memory",
        "unit": "GiB",
        "query": 'demo_memory_gib{service="search"}',
        "limit": 16,
    },
]


#: Watched at the live shop's pace: the anomaly of the demo's story. The 30 s step and the
#: 15 s detection interval are chosen for the demo (not from any data): three anomalous
#: points in a row take about 90 s, inside the 3 minutes a newcomer should wait.
LATENCY_SIGNAL: dict[str, Any] = {
    "name": "checkout-latency",
    "service": "checkout",
    "query": 'demo_latency_p95_seconds{service="checkout"}',
    "step_seconds": 30,
}


def settings(prometheus_url: str) -> dict[str, Any]:
    """The `prometheus`, `capacity` and `detection` settings sections of the demo (detection
    watches two of the capacity series and checkout's latency)."""
    return {
        "prometheus": {"url": prometheus_url},
        "detection": {
            "interval_seconds": 15,
            "signals": [
                *(
                    {
                        "name": s["name"],
                        "service": s["service"],
                        "query": s["query"],
                        "step_seconds": 60 * STEP_MINUTES,
                    }
                    for s in SIGNALS
                    if s["resource"] in ("cpu", "requests")
                ),
                LATENCY_SIGNAL,
            ],
        },
        "capacity": {
            "schedule": "0 * * * *",
            "history_seconds": DAYS * 86_400,
            "signals": SIGNALS,
        },
        # checkout's p95 under 0.8 s 99.9% of the time over a day (86 s of slowness a day):
        # within a minute or two of the demo's start the SLOs page shows the fast-burn page
        # pair (1h/5m at 14.4x) holding and the budget going, until checkout scales out.
        "slos": [
            {
                "name": "checkout-latency",
                "service": "checkout",
                "description": "checkout answers within 0.8 s (p95)",
                "objective": 0.999,
                "window_days": 1,
                "query": 'demo_latency_p95_seconds{service="checkout"}',
                "op": "lt",
                "value": 0.8,
            }
        ],
    }


def levels(days: np.ndarray, rng: np.random.Generator) -> dict[tuple[str, str], np.ndarray]:
    """Every demo gauge at `days` (days since the history began), with noise from `rng`:
    the backfilled history and the live shop (`demo/shop.py`) draw from the same curves, so
    the live points continue the history instead of jumping away from it."""
    n = len(days)
    daily = np.sin(2 * np.pi * days)
    weekday = np.where((days % 7) < 5, 1.0, 0.8)
    return {
        ("demo_cpu_cores", "checkout"): 2.0 + 0.11 * days + 0.4 * daily + rng.normal(0, 0.03, n),
        ("demo_disk_used_gib", "inventory"): 120 + 5.2 * days + rng.normal(0, 0.3, n),
        ("demo_requests_per_second", "payments"): (100 + 30 * daily) * weekday
        + rng.normal(0, 2, n),
        ("demo_memory_gib", "search"): 9 + 0.2 * daily + rng.normal(0, 0.05, n),
        # Before the demo starts checkout had room: p95 around 0.35 s. The live shop's 1.2 s
        # (its 3 replicas under today's load) is the anomaly detection finds.
        ("demo_latency_p95_seconds", "checkout"): 0.35 + 0.04 * daily + rng.normal(0, 0.01, n),
    }


def history(end: datetime, seed: int = 5) -> str:
    """OpenMetrics text of every demo series, 5-minute samples up to `end`."""
    rng = np.random.default_rng(seed)
    n = DAYS * 24 * 60 // STEP_MINUTES
    days = np.arange(n) * STEP_MINUTES / 1440
    start = history_start(end)
    stamps = [start.timestamp() + 60 * STEP_MINUTES * i for i in range(n)]
    return openmetrics(levels(days, rng), stamps)


def history_start(end: datetime) -> datetime:
    """When the backfilled history that ends at `end` begins."""
    n = DAYS * 24 * 60 // STEP_MINUTES
    return end - timedelta(minutes=STEP_MINUTES * (n - 1))
