"""Capacity reports in the running control plane: on the cron schedule, or on request.

A run claims a `report` row first (status `running`), then fetches, forecasts and renders, and
stores the JSON, HTML and Markdown with status `done` (or `failed` with the reason). Scheduled
runs carry their cron time in `scheduled_for`, unique per kind, and are produced only by the
process holding the schedule's lease (`storage.coordination`), whose final write is fenced by
it: with several workers on one PostgreSQL, each scheduled report is produced once, and a
holder that lost the lease mid-report stores nothing (its successor marks that row failed).

Every signal whose forecast may cross its limit within the lead time (upper band crossing and
probability >= `min_probability`) raises a `CapacityRisk` alert through the incident intake
(critical when the mean itself crosses), with the forecast attached as evidence, so that
policies can scale ahead of the crossing. The alert keeps its start time while the risk
lasts and resolves on the first report that no longer shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controlplane.capacity.report import CapacityReport, Fetch, Outlook, build_report
from controlplane.collectors.prometheus import PrometheusCollector
from controlplane.config import Settings
from controlplane.domain.errors import ControlPlaneError, SourceUnavailableError
from controlplane.domain.models import AlertStatus, Severity
from controlplane.domain.series import utc
from controlplane.incidents.intake import ingest_alert
from controlplane.storage import Database
from controlplane.storage.coordination import Lease, process_id
from controlplane.storage.models import AlertRow, EvidenceRow, ReportRow

log = logging.getLogger(__name__)
KIND = "capacity"
SOURCE = "forecast"
ALERT_NAME = "CapacityRisk"
#: The lease under which one process produces the scheduled reports.
LEASE = "capacity-schedule"


class CapacityJob:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        fetch: Fetch | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        workers: int | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.capacity
        self.db = db
        self.clock = clock
        self.workers = workers
        self.fetch = fetch or _prometheus_fetch(settings)
        seconds = settings.coordination.lease_seconds
        self.lease = Lease(db, LEASE, process_id(), seconds, clock)

    # -- the schedule -------------------------------------------------------------------------
    def next_run(self, after: datetime) -> datetime:
        return croniter(self.config.schedule, after).get_next(datetime).astimezone(UTC)  # type: ignore[no-any-return]

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
                log.warning("scheduled capacity report for %s failed: %s", due, exc)
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
                    ReportRow.kind == KIND,
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
        row = ReportRow(
            kind=KIND,
            trigger=trigger,
            requested_by=requested_by,
            status="running",
            scheduled_for=scheduled_for,
            signals=len(self.config.signals),
            at_risk=0,
        )
        try:
            with self.db.write() as session:
                session.add(row)
                session.flush()
                return row.report_id
        except IntegrityError:
            log.info("capacity report for %s is produced by another replica", scheduled_for)
            return None

    def produce(
        self,
        report_id: int,
        on_progress: Callable[[str], None] = lambda step: None,
        *,
        fenced: bool = False,
    ) -> CapacityReport | None:
        """Build the claimed report, store it and raise or resolve capacity-risk alerts
        (`fenced`: only while this process holds the schedule's lease)."""
        now = self.clock()
        try:
            report = build_report(
                self.config,
                self.fetch,
                now,
                dask_address=self.settings.dask.address,
                workers=self.workers,
                on_progress=on_progress,
            )
        except Exception as exc:  # a report that cannot be built says why, in the store
            log.exception("capacity report %s failed", report_id)
            self._finish(report_id, now, error=f"{type(exc).__name__}: {exc}", fenced=fenced)
            return None
        self._finish(report_id, now, report=report, fenced=fenced)
        return report

    def _finish(
        self,
        report_id: int,
        now: datetime,
        *,
        report: CapacityReport | None = None,
        error: str | None = None,
        fenced: bool = False,
    ) -> None:
        with self.lease.write() if fenced else self.db.write() as session:
            row = session.get(ReportRow, report_id)
            if row is None:
                return
            row.finished_at = self.clock()
            if report is None:
                row.status, row.error = "failed", error
                return
            document = {"report_id": report_id, **report.as_json()}
            row.status, row.data = "done", document
            row.html, row.markdown = report.html(), report.markdown()
            row.signals, row.at_risk = len(report.outlooks), len(report.at_risk)
            for outlook in report.outlooks:
                self._raise_or_resolve(session, outlook, report_id, now)
            self._prune(session)

    def _raise_or_resolve(
        self, session: Session, outlook: Outlook, report_id: int, now: datetime
    ) -> None:
        crossing, signal = outlook.crossing, outlook.signal
        if crossing is None:  # no forecast this time: leave any open alert as it is
            return
        fingerprint = hashlib.sha256(f"capacity/{signal.name}".encode()).hexdigest()[:16]
        open_since = session.scalar(
            select(AlertRow.starts_at)
            .where(AlertRow.fingerprint == fingerprint, AlertRow.status == AlertStatus.FIRING)
            .order_by(AlertRow.starts_at.desc())
            .limit(1)
        )
        risky = crossing.at_risk and crossing.probability >= self.config.min_probability
        if not risky and open_since is None:
            return
        alert = _alert(outlook, fingerprint, open_since or now, now, firing=risky)
        result = ingest_alert(
            session, alert, source=SOURCE, group_key=signal.name, joins_others=False
        )
        incident_ids = result.opened + result.updated
        if risky and incident_ids:
            session.add(_evidence(incident_ids[0], outlook, report_id, now))

    def _prune(self, session: Session) -> None:
        keep = (
            select(ReportRow.report_id)
            .where(ReportRow.kind == KIND)
            .order_by(ReportRow.report_id.desc())
            .limit(self.config.keep_reports)
        )
        session.execute(
            delete(ReportRow).where(
                ReportRow.kind == KIND,
                ReportRow.status != "running",
                ReportRow.report_id.not_in(keep.scalar_subquery()),
            )
        )


def _alert(
    outlook: Outlook, fingerprint: str, starts_at: datetime, now: datetime, *, firing: bool
) -> dict[str, Any]:
    crossing, signal = outlook.crossing, outlook.signal
    assert crossing is not None  # checked by the caller
    likely = crossing.mean_at is not None and crossing.probability >= 0.5
    severity = Severity.CRITICAL if likely else Severity.WARNING
    when = crossing.mean_at if crossing.mean_at is not None else crossing.risk_at
    unit = f" {signal.unit}" if signal.unit else ""
    around = f" around {utc(when):%Y-%m-%d %H:%M} UTC" if when is not None else ""
    summary = (
        f"{signal.service} {signal.resource} may reach its limit {outlook.limit:.4g}{unit}"
        f"{around} (probability {100 * crossing.probability:.0f}% within the lead time)"
    )
    return {
        "status": "firing" if firing else "resolved",
        "labels": {
            "alertname": ALERT_NAME,
            "signal": signal.name,
            "service": signal.service,
            "resource": signal.resource,
            "severity": severity.value,
        },
        "annotations": {"summary": summary, "query": signal.query},
        "startsAt": starts_at.isoformat(),
        "endsAt": "0001-01-01T00:00:00Z" if firing else now.isoformat(),
        "generatorURL": "",
        "fingerprint": fingerprint,
    }


def _evidence(incident_id: int, outlook: Outlook, report_id: int, now: datetime) -> EvidenceRow:
    assert outlook.crossing is not None  # checked by the caller
    data = {"kind": "capacity_forecast", "report_id": report_id, **outlook.as_dict()}
    return EvidenceRow(
        incident_id=incident_id,
        kind="capacity_forecast",
        signal=outlook.signal.name,
        service=outlook.signal.service,
        onset_at=now,
        peak_score=outlook.crossing.probability,
        data=data,
    )


def _prometheus_fetch(settings: Settings) -> Fetch:
    if not settings.prometheus.url:

        def unconfigured(query: str, start: datetime, end: datetime, step: int) -> list[Any]:
            raise SourceUnavailableError("prometheus.url is not configured")

        return unconfigured
    return PrometheusCollector(settings.prometheus).query_range
