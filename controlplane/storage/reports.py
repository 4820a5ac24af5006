"""Reports produced on a cron schedule or on request, kept in the `report` table.

A run claims a `report` row first (status `running`), then builds the report and stores its
JSON, HTML and Markdown with status `done` (or `failed` with the reason). Scheduled runs carry
their cron time in `scheduled_for`, unique per kind, and are produced only by the process
holding the kind's schedule lease (`storage.coordination`), whose final write is fenced by it:
with several workers on one PostgreSQL each scheduled report is produced once, and a holder
that lost the lease mid-report stores nothing (its successor marks that row failed). Each kind
keeps its newest `keep` reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from croniter import croniter
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controlplane.domain.errors import ControlPlaneError
from controlplane.storage.coordination import Lease, process_id
from controlplane.storage.db import Database
from controlplane.storage.models import ReportRow

log = logging.getLogger(__name__)


class Rendered(Protocol):
    def as_json(self) -> dict[str, Any]: ...
    def html(self) -> str: ...
    def markdown(self) -> str: ...


R = TypeVar("R", bound=Rendered)


class Scheduled(Protocol):
    """A report kind's settings: its cron schedule and how many reports to keep."""

    @property
    def schedule(self) -> str: ...
    @property
    def keep_reports(self) -> int: ...


class ReportJob(ABC, Generic[R]):
    """One kind of report: its schedule, its claim, its build and how it is stored."""

    kind: ClassVar[str]

    def __init__(
        self,
        db: Database,
        scheduled: Scheduled,
        lease_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db, self.clock = db, clock
        self.schedule, self.keep = scheduled.schedule, scheduled.keep_reports
        self.lease = Lease(db, f"{self.kind}-schedule", process_id(), lease_seconds, clock)

    @abstractmethod
    def build(self, now: datetime, on_progress: Callable[[str], None]) -> R:
        """The report as of `now`."""

    def counts(self, report: R | None) -> tuple[int, int]:
        """What the row's `signals` and `at_risk` columns hold (before the build: None)."""
        return 0, 0

    def stored(self, session: Session, report: R, report_id: int, now: datetime) -> None:
        """What else to write with the stored report, in its transaction."""

    # -- the schedule -------------------------------------------------------------------------
    def next_run(self, after: datetime) -> datetime:
        return croniter(self.schedule, after).get_next(datetime).astimezone(UTC)  # type: ignore[no-any-return]

    async def run_forever(self, stop: asyncio.Event) -> None:
        due = self.next_run(self.clock())
        while not stop.is_set():
            wait = max(0.0, (due - self.clock()).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
            if stop.is_set():
                return
            try:
                await asyncio.to_thread(self.run_scheduled, due)
            except ControlPlaneError as exc:  # the store is down: the next run will try again
                log.warning("scheduled %s report for %s failed: %s", self.kind, due, exc)
            due = self.next_run(max(due, self.clock()))

    def run_scheduled(self, due: datetime) -> int | None:
        """Produce the report of the slot `due` when this process holds the schedule's lease;
        None when another process does."""
        with self.lease.running() as mine:
            if not mine:
                return None
            self._fail_orphans(due)
            report_id = self.claim("schedule", "scheduler", due)
            if report_id is not None:
                self.produce(report_id, fenced=True)
            return report_id

    def _fail_orphans(self, due: datetime) -> None:
        """Earlier slots still `running`: their producer died or lost the lease."""
        with self.db.write() as session:
            session.execute(
                update(ReportRow)
                .where(
                    ReportRow.kind == self.kind,
                    ReportRow.status == "running",
                    ReportRow.scheduled_for < due,
                )
                .values(
                    status="failed",
                    finished_at=self.clock(),
                    error="the process producing it stopped or lost the schedule's lease",
                )
            )

    # -- one run ---------------------------------------------------------------------------------
    def run(
        self, trigger: str, requested_by: str, scheduled_for: datetime | None = None
    ) -> int | None:
        """Claim and produce one report; None when another replica claimed this schedule slot."""
        report_id = self.claim(trigger, requested_by, scheduled_for)
        if report_id is not None:
            self.produce(report_id)
        return report_id

    def claim(
        self, trigger: str, requested_by: str, scheduled_for: datetime | None = None
    ) -> int | None:
        signals, at_risk = self.counts(None)
        row = ReportRow(
            kind=self.kind,
            trigger=trigger,
            requested_by=requested_by,
            status="running",
            scheduled_for=scheduled_for,
            signals=signals,
            at_risk=at_risk,
        )
        try:
            with self.db.write() as session:
                session.add(row)
                session.flush()
                return row.report_id
        except IntegrityError:
            log.info("%s report for %s is produced by another replica", self.kind, scheduled_for)
            return None

    def produce(
        self,
        report_id: int,
        on_progress: Callable[[str], None] = lambda step: None,
        *,
        fenced: bool = False,
    ) -> R | None:
        """Build the claimed report and store it (`fenced`: only while this process holds
        the schedule's lease)."""
        now = self.clock()
        try:
            report = self.build(now, on_progress)
        except Exception as exc:  # a report that cannot be built says why, in the store
            log.exception("%s report %s failed", self.kind, report_id)
            self._finish(report_id, now, None, f"{type(exc).__name__}: {exc}", fenced=fenced)
            return None
        self._finish(report_id, now, report, None, fenced=fenced)
        return report

    def _finish(
        self,
        report_id: int,
        now: datetime,
        report: R | None,
        error: str | None,
        *,
        fenced: bool,
    ) -> None:
        with self.lease.write() if fenced else self.db.write() as session:
            row = session.get(ReportRow, report_id)
            if row is None:
                return
            row.finished_at = self.clock()
            if report is None:
                row.status, row.error = "failed", error
                return
            row.status, row.data = "done", {"report_id": report_id, **report.as_json()}
            row.html, row.markdown = report.html(), report.markdown()
            row.signals, row.at_risk = self.counts(report)
            self.stored(session, report, report_id, now)
            self._prune(session)

    def _prune(self, session: Session) -> None:
        newest = (
            select(ReportRow.report_id)
            .where(ReportRow.kind == self.kind)
            .order_by(ReportRow.report_id.desc())
            .limit(self.keep)
        )
        session.execute(
            delete(ReportRow).where(
                ReportRow.kind == self.kind,
                ReportRow.status != "running",
                ReportRow.report_id.not_in(newest.scalar_subquery()),
            )
        )
