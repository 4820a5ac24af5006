"""Coordination between the processes that run loops, through the store they share.

- **Members.** Every process running loops (`aiops worker`, or `aiops serve` with its loops)
  is a `worker` row with a heartbeat; it is alive while its heartbeat is younger than
  `coordination.member_ttl_seconds`, and leaves (row deleted, signals freed) when it stops.
- **Signal owners.** Each detection signal belongs to the live member that rendezvous hashing
  (highest random weight) picks: every member computes the same answer from the same member
  list without talking to the others, and a join or a death moves only the signals that
  member gains or loses. A member takes a signal with a conditional update (it is free, or its
  owner is dead) and frees the ones another live member is now picked for. It writes a
  signal's alerts and state only in a transaction that finds the owner row still naming it,
  locked `FOR UPDATE` on PostgreSQL (`owned_for_update`): a paused worker whose signals moved
  on cannot write them when it wakes.
- **Leases.** Singleton work (the policy decide step, scheduled capacity reports) runs under a
  named lease: one holder until it expires; taking it over bumps its `token`. Every write of
  the work goes through `Lease.fence`, which locks the lease row and checks holder and token
  in the same transaction, so a holder that lost its lease (paused past it, cut off from the
  store) fails with `LeaseLostError` instead of committing as if it still held it.

Expiry compares the members' clocks (UTC, synchronised as on any Kubernetes node); fencing
does not depend on clocks: a takeover changes the row the loser's commit has to find.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controlplane.domain.errors import LeaseLostError
from controlplane.storage.db import Database
from controlplane.storage.models import LeaseRow, SignalOwnerRow, WorkerRow

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
#: A member silent this many times its time-to-live is removed from the table.
FORGET_AFTER_TTLS = 10
#: Per lease name: taken while a caller of this process runs the leased work.
_RUNNING: dict[str, threading.Lock] = {}


def member_id() -> str:
    """A fresh process name among the members: host, pid and a random part (a restarted pod
    with the same host name and pid is a new member)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


_PROCESS: tuple[int, str] | None = None


def process_id() -> str:
    """This process's name, the holder of its leases and the owner of its signals (a forked
    child, e.g. one of `aiops serve --workers N`, gets a name of its own)."""
    global _PROCESS
    if _PROCESS is None or _PROCESS[0] != os.getpid():
        _PROCESS = (os.getpid(), member_id())
    return _PROCESS[1]


def rendezvous(key: str, members: Sequence[str]) -> str:
    """The member with the highest hash of (member, key): the same on every member."""
    return max(
        members, key=lambda m: hashlib.blake2b(f"{m}\0{key}".encode(), digest_size=8).digest()
    )


@dataclass
class Membership:
    """This process as a member: heartbeats, the live list, leaving."""

    db: Database
    me: str
    ttl_seconds: float
    clock: Clock
    started_at: datetime | None = None

    def beat(self) -> list[str]:
        """Record a heartbeat; the live members (sorted), this one included."""
        now = self.clock()
        self.started_at = self.started_at or now
        with self.db.write() as session:
            row = session.get(WorkerRow, self.me)
            if row is None:
                session.add(
                    WorkerRow(
                        worker_id=self.me,
                        host=socket.gethostname()[:255],
                        pid=os.getpid(),
                        started_at=self.started_at,
                        heartbeat_at=now,
                    )
                )
            else:
                row.heartbeat_at = now
            forget = now - timedelta(seconds=self.ttl_seconds * FORGET_AFTER_TTLS)
            session.execute(delete(WorkerRow).where(WorkerRow.heartbeat_at < forget))
            return live(session, now, self.ttl_seconds)

    def leave(self) -> None:
        """Remove this member and free its signals: the others take them on their next cycle."""
        with self.db.write() as session:
            session.execute(
                update(SignalOwnerRow).where(SignalOwnerRow.owner == self.me).values(owner=None)
            )
            session.execute(delete(WorkerRow).where(WorkerRow.worker_id == self.me))


def live(session: Session, now: datetime, ttl_seconds: float) -> list[str]:
    since = now - timedelta(seconds=ttl_seconds)
    rows = session.scalars(select(WorkerRow.worker_id).where(WorkerRow.heartbeat_at >= since))
    return sorted(rows)


@dataclass
class Handover:
    """What one `SignalOwners.sync` changed for this member."""

    owned: set[str]
    claimed: set[str] = field(default_factory=set)
    released: set[str] = field(default_factory=set)


@dataclass
class SignalOwners:
    """The signals this member scores, kept in step with the live member list."""

    db: Database
    me: str
    clock: Clock
    owned: set[str] = field(default_factory=set)
    _picked: tuple[tuple[str, ...], frozenset[str]] | None = None

    def wanted(self, signals: Iterable[str], members: Sequence[str]) -> frozenset[str]:
        """The signals rendezvous hashing gives this member (cached per member list)."""
        names = tuple(sorted(signals))
        key = (*members, "\0", *names)
        if self._picked is None or self._picked[0] != key:
            mine = frozenset(s for s in names if rendezvous(s, members) == self.me)
            self._picked = (key, mine)
        return self._picked[1]

    def sync(self, signals: Iterable[str], ttl_seconds: float) -> Handover:
        """Free the signals another live member is now picked for, take the ones picked for
        this member that are free or held by a dead member; returns what this member owns.
        A member whose own heartbeat is stale (it was paused) is not live: it frees all."""
        names = set(signals)
        now = self.clock()
        with self.db.write() as session:
            members = live(session, now, ttl_seconds)
            wanted = self.wanted(names, members) if self.me in members else frozenset()
            before = _owned(session, self.me)
            release = before - wanted
            for chunk in chunks(release):
                session.execute(
                    update(SignalOwnerRow)
                    .where(SignalOwnerRow.owner == self.me, SignalOwnerRow.signal.in_(chunk))
                    .values(owner=None)
                )
            take = wanted - before
            _ensure_rows(session, self.db, take, now)
            for chunk in chunks(take):
                session.execute(
                    update(SignalOwnerRow)
                    .where(
                        SignalOwnerRow.signal.in_(chunk),
                        or_(SignalOwnerRow.owner.is_(None), SignalOwnerRow.owner.not_in(members)),
                    )
                    .values(owner=self.me, token=SignalOwnerRow.token + 1, claimed_at=now)
                    .execution_options(synchronize_session=False)
                )
            after = _owned(session, self.me)
        self.owned = after & names
        return Handover(self.owned, claimed=after - before, released=before - after)

    def owned_for_update(self, session: Session) -> set[str]:
        """Inside a write: the signals whose owner row still names this member, locked until
        the transaction ends (the fence for writing their alerts and state)."""
        rows = session.scalars(
            select(SignalOwnerRow.signal).where(SignalOwnerRow.owner == self.me).with_for_update()
        )
        return set(rows)


def _owned(session: Session, me: str) -> set[str]:
    return set(session.scalars(select(SignalOwnerRow.signal).where(SignalOwnerRow.owner == me)))


def chunks(names: Iterable[str], size: int = 5000) -> Iterator[list[str]]:
    """Sorted, in lists a statement's parameter limit takes (SQLite: 32,766; libpq: 65,535)."""
    ordered = sorted(names)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def _ensure_rows(session: Session, db: Database, names: Iterable[str], now: datetime) -> None:
    """An owner row (free) for each signal that has none yet; concurrent inserts are fine."""
    insert = sqlite_insert if db.is_sqlite else pg_insert
    for chunk in chunks(names, 2000):  # four parameters a row
        rows = [{"signal": n, "owner": None, "token": 0, "claimed_at": now} for n in chunk]
        statement = insert(SignalOwnerRow).values(rows)
        session.execute(statement.on_conflict_do_nothing(index_elements=["signal"]))


@dataclass
class Lease:
    """A named lease on singleton work for one holder; see the module's docstring."""

    db: Database
    name: str
    holder: str
    seconds: float
    clock: Clock
    token: int | None = None
    until: datetime | None = None

    @contextmanager
    def running(self) -> Iterator[bool]:
        """Whether this caller may run the leased work now: it holds the lease, and no other
        caller in this process runs it (the lease's holder is the process, so two loops of
        one process, e.g. the API's and a CLI's, also take turns)."""
        local = _RUNNING.setdefault(self.name, threading.Lock())
        if not local.acquire(blocking=False):
            yield False
            return
        try:
            yield self.hold()
        finally:
            local.release()

    def hold(self) -> bool:
        """Hold the lease: renew it when half of it is spent, take it when it expired; False
        when another holder has it."""
        now = self.clock()
        fresh = self.until is not None and (self.until - now).total_seconds() > self.seconds / 2
        if self.token is not None and fresh:
            return True
        try:
            with self.db.write() as session:
                return self._take_or_renew(session, now)
        except IntegrityError:  # another process created the row first
            self.token = self.until = None
            return False

    def _take_or_renew(self, session: Session, now: datetime) -> bool:
        row = session.get(LeaseRow, self.name, with_for_update=True, populate_existing=True)
        until = now + timedelta(seconds=self.seconds)
        if row is None:
            row = LeaseRow(name=self.name, holder=self.holder, token=1, acquired_at=now)
            session.add(row)
        elif row.holder != self.holder:  # the same holder (this process) keeps its token
            if row.expires_at > now:
                self.token = self.until = None
                return False
            log.info("lease %s taken over from %s (token %d)", self.name, row.holder, row.token + 1)
            row.holder, row.token, row.acquired_at = self.holder, row.token + 1, now
        row.expires_at = until
        session.flush()
        self.token, self.until = row.token, until
        return True

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction of the leased work, fenced (see `fence`)."""
        with self.db.write() as session:
            self.fence(session)
            yield session

    def fence(self, session: Session) -> None:
        """Inside a write of the leased work: raise LeaseLostError unless this holder still
        holds the lease (its row is locked until the transaction ends, and renewed)."""
        row = session.get(LeaseRow, self.name, with_for_update=True, populate_existing=True)
        if row is None or row.holder != self.holder or row.token != self.token:
            by = "nobody" if row is None else f"{row.holder} (token {row.token})"
            self.token = self.until = None
            raise LeaseLostError(f"lease {self.name!r} is held by {by}, not by this process")
        now = self.clock()
        row.expires_at = self.until = now + timedelta(seconds=self.seconds)

    def release(self) -> None:
        """Give the lease up (at stop), so another holder need not wait for it to expire; the
        row stays, so tokens keep growing."""
        if self.token is None:
            return
        with self.db.write() as session:
            session.execute(
                update(LeaseRow)
                .where(
                    LeaseRow.name == self.name,
                    LeaseRow.holder == self.holder,
                    LeaseRow.token == self.token,
                )
                .values(expires_at=self.clock())
            )
        self.token = self.until = None
