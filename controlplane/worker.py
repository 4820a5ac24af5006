"""The control plane's loops: signal detection, the policy runner and scheduled capacity
reports, apart from the HTTP API.

`aiops serve` runs them beside the API (the embedded default: one process does everything)
unless `api.run_loops` is false; `aiops worker` runs them with no HTTP at all, so API replicas
can stay stateless and scale apart from the loops. Work that must happen once across
processes coordinates through the store: the policy runner claims each decision under a
lease, and a scheduled capacity report's slot is a unique row (the first process wins).
"""

from __future__ import annotations

import asyncio
import logging

from controlplane import __version__
from controlplane.capacity.job import CapacityJob
from controlplane.config import Settings
from controlplane.detection.scheduler import DetectionScheduler
from controlplane.policy.runner import PolicyRunner
from controlplane.storage import Database, masked, upgrade

log = logging.getLogger(__name__)


def start_loops(settings: Settings, db: Database, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    """Start every loop the settings ask for; each ends once `stop` is set."""
    loops = []
    if settings.detection.signals:
        scheduler = DetectionScheduler(settings, db)
        loops.append(asyncio.create_task(scheduler.run_forever(stop), name="detection"))
    if settings.automation.enabled and settings.automation.policies_dir is not None:
        runner = PolicyRunner(settings, db)
        loops.append(asyncio.create_task(runner.run_forever(stop), name="policies"))
    if settings.capacity.schedule and settings.capacity.signals:
        capacity = CapacityJob(settings, db)
        loops.append(asyncio.create_task(capacity.run_forever(stop), name="capacity"))
    return loops


async def run_worker(settings: Settings, stop: asyncio.Event) -> list[str]:
    """Run the loops until `stop` is set (migrating first, as `serve` does); the loops' names."""
    if settings.database.migrate_on_start:
        upgrade(settings.database.url)
    db = Database(
        settings.database.url, pool_size=settings.database.pool_size, echo=settings.database.echo
    )
    try:
        loops = start_loops(settings, db, stop)
        names = [task.get_name() for task in loops]
        if not loops:
            log.warning(
                "worker has nothing to run: no detection signals, no policies folder with "
                "automation enabled, and no capacity schedule with signals"
            )
        log.info(
            "control plane %s worker running %s on %s",
            __version__,
            ", ".join(names) or "nothing",
            masked(settings.database.url),
        )
        await stop.wait()
        await asyncio.gather(*loops)
        return names
    finally:
        db.dispose()
