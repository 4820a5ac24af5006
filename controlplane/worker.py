"""The control plane's loops: signal detection, the policy runner and scheduled capacity
reports, apart from the HTTP API.

`aiops serve` runs them beside the API (the embedded default: one process does everything)
unless `api.run_loops` is false; `aiops worker` runs them with no HTTP at all, so API replicas
can stay stateless and scale apart from the loops. Processes coordinate through the store
(`storage.coordination`): each is a member with a heartbeat, detection signals are shared
among the live members, and singleton work (policy decisions, scheduled capacity reports)
runs under fenced leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from controlplane import __version__
from controlplane.capacity.job import CapacityJob
from controlplane.config import Settings
from controlplane.detection.scheduler import DetectionScheduler
from controlplane.detection.security import SecurityScanner
from controlplane.domain.errors import ControlPlaneError
from controlplane.incidents.noise import NoiseJob
from controlplane.loops import every
from controlplane.notifications.notifier import Notifier
from controlplane.policy.runner import PolicyRunner
from controlplane.storage import Database, masked, upgrade
from controlplane.storage.coordination import Membership, SignalOwners, process_id

log = logging.getLogger(__name__)


def start_loops(settings: Settings, db: Database, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    """Start every loop the settings ask for; each ends once `stop` is set."""
    loops = []
    if settings.detection.signals or settings.detection.families:
        coordination = settings.coordination
        membership = Membership(db, process_id(), coordination.member_ttl_seconds, _utcnow)
        with contextlib.suppress(ControlPlaneError):  # the store is down: the loop beats later
            membership.beat()  # live before the first cycle shares the signals out
        owners = SignalOwners(db, process_id(), _utcnow)
        scheduler = DetectionScheduler(settings, db, owners=owners)
        detection = asyncio.create_task(scheduler.run_forever(stop), name="detection")
        beats = _heartbeat(membership, coordination.heartbeat_seconds, detection, stop)
        loops += [detection, asyncio.create_task(beats, name="heartbeat")]
    if settings.automation.enabled and settings.automation.policies_dir is not None:
        runner = PolicyRunner(settings, db)
        loops.append(asyncio.create_task(runner.run_forever(stop), name="policies"))
    if settings.security.enabled:
        scanner = SecurityScanner(settings, db)
        loops.append(asyncio.create_task(scanner.run_forever(stop), name="security"))
    if settings.notifications.file is not None:
        notifier = Notifier(settings, db)
        loops.append(asyncio.create_task(notifier.run_forever(stop), name="notifications"))
    if settings.capacity.schedule and settings.capacity.signals:
        capacity = CapacityJob(settings, db)
        loops.append(asyncio.create_task(capacity.run_forever(stop), name="capacity"))
    if settings.noise.schedule:
        noise = NoiseJob(settings, db)
        loops.append(asyncio.create_task(noise.run_forever(stop), name="noise"))
    return loops


async def _heartbeat(
    membership: Membership, seconds: float, detection: asyncio.Task[None], stop: asyncio.Event
) -> None:
    """Beat until `stop`; then, once detection wrote its last state, leave: the other members
    take this one's signals on their next cycle instead of after its time-to-live."""
    await every(seconds, lambda: asyncio.to_thread(membership.beat), stop, "heartbeat")
    await asyncio.wait([detection])
    try:
        await asyncio.to_thread(membership.leave)
    except ControlPlaneError as exc:
        log.warning("could not leave the members (its signals move after its TTL): %s", exc)


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
