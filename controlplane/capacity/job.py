"""Capacity reports in the running control plane: on the cron schedule, or on request
(claimed, built, stored and scheduled as every report is: `storage.reports`).

Every signal whose forecast may cross its limit within the lead time (upper band crossing and
probability >= `min_probability`) raises a `CapacityRisk` alert through the incident intake
(critical when the mean itself crosses), with the forecast attached as evidence, so that
policies can scale ahead of the crossing. The alert keeps its start time while the risk
lasts and resolves on the first report that no longer shows it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.capacity.report import CapacityReport, Fetch, Outlook, build_report
from controlplane.collectors.prometheus import PrometheusCollector
from controlplane.config import Settings
from controlplane.domain.errors import SourceUnavailableError
from controlplane.domain.models import AlertStatus, Severity
from controlplane.domain.series import utc
from controlplane.incidents.intake import ingest_alert
from controlplane.storage import Database
from controlplane.storage.models import AlertRow, EvidenceRow
from controlplane.storage.reports import ReportJob

KIND = "capacity"
SOURCE = "forecast"
ALERT_NAME = "CapacityRisk"


class CapacityJob(ReportJob[CapacityReport]):
    kind = KIND

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
        self.workers = workers
        self.fetch = fetch or _prometheus_fetch(settings)
        super().__init__(db, self.config, settings.coordination.lease_seconds, clock)

    def build(self, now: datetime, on_progress: Callable[[str], None]) -> CapacityReport:
        return build_report(
            self.config,
            self.fetch,
            now,
            dask_address=self.settings.dask.address,
            workers=self.workers,
            on_progress=on_progress,
            cost=self.settings.cost,
        )

    def counts(self, report: CapacityReport | None) -> tuple[int, int]:
        if report is None:
            return len(self.config.signals), 0
        return len(report.outlooks), len(report.at_risk)

    def stored(
        self, session: Session, report: CapacityReport, report_id: int, now: datetime
    ) -> None:
        """Raise or resolve each signal's capacity-risk alert."""
        for outlook in report.outlooks:
            self._raise_or_resolve(session, outlook, report_id, now)

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
