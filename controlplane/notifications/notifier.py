"""The notifier: routes events from the audit log into the message outbox, escalates
approvals left waiting, and delivers the outbox with retries.

One process at a time does this, under the `notifications` lease; every write is fenced, so
a holder paused past its lease writes nothing. Routing reads the audit log past a cursor kept
in the store and advances it in the same transaction that adds the messages: an event is
routed once, whatever crashes. Delivery is at least once: a message is marked sent after its
channel accepted it, so a crash in between sends it again (channels carry an idempotency key).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.config import Settings
from controlplane.domain.errors import ControlPlaneError, PermanentError, TemporaryError
from controlplane.domain.maintenance import MaintenanceWindow, covering
from controlplane.domain.models import DecisionStatus
from controlplane.loops import every
from controlplane.notifications import REGISTRY, from_store, routing
from controlplane.notifications.base import Channel
from controlplane.notifications.events import Event, EventType
from controlplane.storage import Database, audit, maintenance
from controlplane.storage.coordination import Lease, process_id
from controlplane.storage.models import (
    AuditEventRow,
    CursorRow,
    DecisionRow,
    IncidentRow,
    MessageRow,
)

log = logging.getLogger(__name__)

LEASE = "notifications"
CURSOR = "notifications"
ACTOR = "notifier"
BATCH = 500
#: A gap in audit ids may be a transaction still committing (PostgreSQL hands out ids before
#: commit): rows after it wait this long for it before the gap is taken as a rollback.
GAP_WAIT_SECONDS = 10.0
#: On the first start, events this recent are still told (older history is not replayed).
FIRST_LOOK_BACK = timedelta(minutes=15)
BACKOFF_SECONDS, BACKOFF_MAX_SECONDS = 5.0, 900.0


class Status:
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    MUTED = "muted"


@dataclass
class CycleResult:
    routed: int = 0
    escalated: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0


Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Notifier:
    def __init__(self, settings: Settings, db: Database, clock: Clock = _utcnow) -> None:
        config = settings.notifications
        assert config.file is not None, "the notifier needs notifications.file"
        self.file = routing.load(config.file)
        self.channels: dict[str, Channel] = {  # type: ignore[type-arg]
            name: REGISTRY[params.type](params) for name, params in self.file.channels.items()
        }
        self.db, self.clock = db, clock
        self.interval = config.interval_seconds
        self.max_attempts = config.max_attempts
        self.flap_seconds = settings.incidents.flap_seconds
        self.linker = from_store.Linker(settings)
        self.lease = Lease(db, LEASE, process_id(), settings.coordination.lease_seconds, clock)
        self._gaps: dict[int, float] = {}

    async def run_forever(self, stop: asyncio.Event) -> None:
        await every(self.interval, lambda: asyncio.to_thread(self.cycle), stop, "notifications")
        self.lease.release()

    def cycle(self) -> CycleResult:
        result = CycleResult()
        with self.lease.running() as mine:
            if mine:
                self.route(result)
                self.escalate(result)
                self.deliver(result)
        return result

    # -- routing --------------------------------------------------------------------------
    def route(self, result: CycleResult) -> None:
        now = self.clock()
        with self.lease.write() as session:
            cursor = session.get(CursorRow, CURSOR, with_for_update=True)
            if cursor is None:
                cursor = CursorRow(name=CURSOR, position=_first_position(session, now))
                session.add(cursor)
            rows = session.scalars(
                select(AuditEventRow)
                .where(AuditEventRow.audit_event_id > cursor.position)
                .order_by(AuditEventRow.audit_event_id)
                .limit(BATCH)
            ).all()
            accepted = self._contiguous(cursor.position, rows)
            windows = maintenance.open_now(session, now) if accepted else []
            for event in from_store.events(session, self.linker, accepted):
                muted_by = _muting_window(windows, event, now)
                for route in self.file.routes:
                    if route.matches(event):
                        for channel in route.channels:
                            result.routed += self._enqueue(
                                session, route, channel, event, now, muted_by
                            )
            if accepted:
                cursor.position, cursor.updated_at = accepted[-1].audit_event_id, now
                self._gaps = {k: v for k, v in self._gaps.items() if k > cursor.position}

    def _contiguous(self, position: int, rows: Sequence[AuditEventRow]) -> list[AuditEventRow]:
        """The rows up to the first gap in ids that may still be filled by a late commit."""
        accepted: list[AuditEventRow] = []
        expected = position + 1
        for row in rows:
            if row.audit_event_id != expected:
                first_seen = self._gaps.setdefault(expected, time.monotonic())
                if time.monotonic() - first_seen < GAP_WAIT_SECONDS:
                    break
            accepted.append(row)
            expected = row.audit_event_id + 1
        return accepted

    def _enqueue(
        self,
        session: Session,
        route: routing.Route,
        channel: str,
        event: Event,
        now: datetime,
        muted_by: str | None = None,
    ) -> int:
        """Add the event to the channel's outbox (or to the open group); 1 when a message
        was added or grown. A muted one (quiet hours, a maintenance window) is kept, marked."""
        quiet = route.quiet_hours is not None and route.quiet_hours.mutes(event, now)
        muted_by = muted_by or ("quiet hours" if quiet else None)
        muted = muted_by is not None
        hold = route.group_seconds
        if event.type == EventType.INCIDENT_RESOLVED:  # told once it held (flap damping)
            hold = max(hold, self.flap_seconds)
        group_key = f"{route.name}/{channel}/{event.type.value}" if route.group_seconds else None
        if group_key and not muted:
            open_group = session.scalars(
                select(MessageRow)
                .where(
                    MessageRow.group_key == group_key,
                    MessageRow.status == Status.PENDING,
                    MessageRow.attempts == 0,
                    MessageRow.created_at > now - timedelta(seconds=route.group_seconds),
                )
                .order_by(MessageRow.message_id.desc())
                .limit(1)
            ).first()
            if open_group is not None:
                open_group.events = [*open_group.events, event.as_dict()]
                return 1
        session.add(
            MessageRow(
                dedup_key=f"{event.id}/{route.name}/{channel}",
                group_key=group_key,
                channel=channel,
                route=route.name,
                event_type=event.type.value,
                incident_id=event.incident.id if event.incident else None,
                status=Status.MUTED if muted else Status.PENDING,
                events=[event.as_dict()],
                attempts=0,
                created_at=now,
                next_attempt_at=now + timedelta(seconds=hold),
                last_error=muted_by,
            )
        )
        return 1

    # -- escalation -----------------------------------------------------------------------
    def escalate(self, result: CycleResult) -> None:
        """Approvals waiting longer than a route's `escalate_after_minutes` go to its
        `escalate_to` channels, once per decision and channel."""
        now = self.clock()
        for route in self.file.routes:
            if route.escalate_after_minutes is None:
                continue
            since = now - timedelta(minutes=route.escalate_after_minutes)
            with self.lease.write() as session:
                waiting = session.scalars(
                    select(DecisionRow).where(
                        DecisionRow.status == DecisionStatus.PENDING_APPROVAL,
                        DecisionRow.updated_at <= since,
                    )
                ).all()
                for decision in waiting:
                    event_id = f"escalation-{decision.decision_id}-{decision.plan_digest}"
                    keys = [f"{event_id}/{route.name}/{c}" for c in route.escalate_to]
                    known = set(
                        session.scalars(
                            select(MessageRow.dedup_key).where(MessageRow.dedup_key.in_(keys))
                        )
                    )
                    if len(known) == len(keys):
                        continue
                    event = from_store.build(
                        session,
                        self.linker,
                        EventType.APPROVAL_ESCALATED,
                        event_id,
                        ACTOR,
                        now,
                        decision_row=decision,
                    )
                    if not route.matches(event.retyped(EventType.APPROVAL_WAITING)):
                        continue
                    for channel, key in zip(route.escalate_to, keys, strict=True):
                        if key not in known:
                            result.escalated += self._enqueue(session, route, channel, event, now)

    # -- delivery -------------------------------------------------------------------------
    def deliver(self, result: CycleResult) -> None:
        now = self.clock()
        with self.db.read() as session:
            due = session.scalars(
                select(MessageRow)
                .where(MessageRow.status == Status.PENDING, MessageRow.next_attempt_at <= now)
                .order_by(MessageRow.message_id)
                .limit(100)
            ).all()
            session.expunge_all()
        for message in due:
            self._deliver_one(message, result)

    def _deliver_one(self, message: MessageRow, result: CycleResult) -> None:
        channel = self.channels.get(message.channel)
        now = self.clock()
        if channel is not None:
            wait = self._rate_limited(channel, message.channel, now)
            if wait is not None:
                with self.lease.write() as session:
                    row = session.get(MessageRow, message.message_id)
                    if row is not None and row.status == Status.PENDING:
                        row.next_attempt_at = wait
                return
        events = self._still_true([Event.from_dict(e) for e in message.events])
        if not events:
            self._mute(message, "its incidents reopened before the flap window ended (flapping)")
            return
        attempts = message.attempts + 1
        status, receipt, error = Status.SENT, None, None
        try:
            if channel is None:
                raise PermanentError(f"channel {message.channel!r} is no longer configured")
            receipt = channel.send(events, key=message.dedup_key)
        except TemporaryError as exc:
            status, error = Status.PENDING, str(exc)
            if attempts >= self.max_attempts:
                status, error = Status.FAILED, f"gave up after {attempts} attempts: {exc}"
        except ControlPlaneError as exc:
            status, error = Status.FAILED, str(exc)
        done = self.clock()
        with self.lease.write() as session:
            row = session.get(MessageRow, message.message_id)
            if row is None or row.status != Status.PENDING:
                return
            row.status, row.attempts, row.last_error = status, attempts, error
            if status == Status.SENT:
                row.sent_at, row.receipt = done, receipt
                result.sent += 1
            elif status == Status.FAILED:
                result.failed += 1
            else:
                delay = min(BACKOFF_MAX_SECONDS, BACKOFF_SECONDS * 2 ** (attempts - 1))
                row.next_attempt_at = done + timedelta(seconds=delay)
                result.retrying += 1
            verb = {Status.SENT: "sent", Status.FAILED: "failed"}.get(status, "retrying")
            audit.record(
                session,
                actor=ACTOR,
                action=f"notification.{verb}",
                target_type="message",
                target_id=row.message_id,
                details={
                    "channel": row.channel,
                    "route": row.route,
                    "event_type": row.event_type,
                    "events": len(row.events),
                    "attempt": attempts,
                    "receipt": receipt,
                    "error": error,
                },
                at=done,
            )
        if status == Status.FAILED:
            log.warning(
                "notification %d to %s failed: %s", message.message_id, message.channel, error
            )

    def _still_true(self, events: list[Event]) -> list[Event]:
        """Without the resolutions that did not hold: their incident reopened since (flapping),
        whether or not it resolved again later (that later resolution is its own event)."""
        resolved = {
            e.incident.id for e in events if e.type == EventType.INCIDENT_RESOLVED and e.incident
        }
        if not resolved:
            return events
        with self.db.read() as session:
            now_resolved_at = dict(
                session.execute(
                    select(IncidentRow.incident_id, IncidentRow.resolved_at).where(
                        IncidentRow.incident_id.in_(resolved)
                    )
                ).all()
            )

        def held(event: Event) -> bool:
            if event.type != EventType.INCIDENT_RESOLVED or event.incident is None:
                return True
            at = now_resolved_at.get(event.incident.id)
            return at == event.time  # the intake stamps both with the same instant

        return [e for e in events if held(e)]

    def _mute(self, message: MessageRow, why: str) -> None:
        with self.lease.write() as session:
            row = session.get(MessageRow, message.message_id)
            if row is not None and row.status == Status.PENDING:
                row.status, row.last_error = Status.MUTED, why

    def _rate_limited(self, channel: Channel, name: str, now: datetime) -> datetime | None:  # type: ignore[type-arg]
        """When the channel's rate limit is spent: the time the next message may go."""
        limit = channel.params.rate_limit
        if limit is None:
            return None
        since = now - timedelta(seconds=limit.per_seconds)
        with self.db.read() as session:
            sent = session.scalars(
                select(MessageRow.sent_at)
                .where(MessageRow.channel == name, MessageRow.sent_at > since)
                .order_by(MessageRow.sent_at)
            ).all()
        if len(sent) < limit.messages:
            return None
        oldest: datetime = sent[len(sent) - limit.messages]
        return oldest + timedelta(seconds=limit.per_seconds)


def _muting_window(windows: list[MaintenanceWindow], event: Event, now: datetime) -> str | None:
    """Why an incident's page is muted: the maintenance window covering it, if one mutes.
    Only incident events are muted; approvals and actions still reach people."""
    if event.incident is None or not event.type.value.startswith("incident."):
        return None
    namespace = event.incident.labels.get("namespace")
    for window in covering(windows, event.incident.service, namespace, now):
        if window.mute_paging:
            return f"{window.label} mutes paging"
    return None


def _first_position(session: Session, now: datetime) -> int:
    """Where a first start begins reading: after what is older than FIRST_LOOK_BACK."""
    position = session.scalar(
        select(func.max(AuditEventRow.audit_event_id)).where(
            AuditEventRow.at < now - FIRST_LOOK_BACK
        )
    )
    return int(position or 0)
