"""Alertmanager intake: one notification -> stored raw, alert episodes upserted, incidents
opened, grown, raised or resolved, with exactly one timeline entry per real change.

Idempotence rests on two unique keys: the notification's SHA-256 (an identical re-delivery is
counted, not re-applied) and the alert episode (`fingerprint`, `startsAt`), so a retry, an HA
pair or a repeat notification never opens a second incident or writes a second entry.
Grouping: alerts with the same group key join the group's open incident; the partial unique
index `ux_incident_open_group` guarantees one open incident per key even across replicas.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from controlplane import audit
from controlplane.domain.alertmanager import Alert, Notification
from controlplane.domain.models import AlertStatus, IncidentStatus, Severity, TimelineKind
from controlplane.storage.models import AlertRow, IncidentRow, NotificationRow, TimelineEntryRow

SOURCE = "alertmanager"
ACTOR = "alertmanager"
GROUP_BY_ALERTMANAGER = "alertmanager_group"
SERVICE_LABELS = ("service", "app", "job")


@dataclass
class IngestResult:
    notification_id: int
    duplicate: bool
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


def payload_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def ingest_alertmanager(
    session: Session,
    notification: Notification,
    *,
    payload: dict[str, Any],
    digest: str,
    group_by: str = GROUP_BY_ALERTMANAGER,
) -> IngestResult:
    """Apply one validated notification inside the caller's transaction."""
    now = datetime.now(UTC)
    stored = session.scalars(
        select(NotificationRow).where(NotificationRow.payload_sha256 == digest)
    ).one_or_none()
    if stored is not None:
        stored.delivery_count += 1
        stored.last_received_at = now
        return IngestResult(stored.notification_id, duplicate=True)

    stored = NotificationRow(
        source=SOURCE, payload_sha256=digest, group_key=notification.group_key,
        status=notification.status, payload=payload, received_at=now, last_received_at=now,
    )
    session.add(stored)
    session.flush()
    intake = _Intake(session, notification, stored.notification_id, group_by, now)
    for alert in notification.alerts:
        intake.apply(alert)
    return intake.finish()


class _Intake:
    """The state of one notification's application: known episodes and touched incidents."""

    def __init__(
        self, session: Session, notification: Notification, notification_id: int,
        group_by: str, now: datetime,
    ) -> None:
        self.session = session
        self.notification = notification
        self.notification_id = notification_id
        self.group_by = group_by
        self.now = now
        self.result = IngestResult(notification_id, duplicate=False)
        self.open_by_key: dict[str, IncidentRow | None] = {}
        self.touched: dict[int, IncidentRow] = {}
        keys = [(a.fingerprint, a.starts_at) for a in notification.alerts]
        self.episodes = {
            (row.fingerprint, row.starts_at): row
            for row in session.scalars(
                select(AlertRow).where(tuple_(AlertRow.fingerprint, AlertRow.starts_at).in_(keys))
            )
        }

    def apply(self, alert: Alert) -> None:
        episode = self.episodes.get((alert.fingerprint, alert.starts_at))
        if episode is None:
            self._add_episode(alert)
        elif episode.status == AlertStatus.FIRING and alert.status == AlertStatus.RESOLVED:
            self._resolve_episode(episode, alert)
        # Otherwise a repeat (or a stale "firing" after the resolution): nothing changed.

    def finish(self) -> IngestResult:
        for incident in self.touched.values():
            if incident.resolved_at is None and not any(
                a.status == AlertStatus.FIRING for a in incident.alerts
            ):
                self._resolve_incident(incident)
            elif incident.incident_id not in self.result.opened:
                self.result.updated.append(incident.incident_id)
        return self.result

    def _add_episode(self, alert: Alert) -> None:
        key = self._group_key(alert)
        incident = self._open_incident(key)
        joined = incident is not None
        if incident is None:
            if alert.status == AlertStatus.RESOLVED:
                return  # resolved before we ever saw it fire, and nothing open to attach to
            incident = self._create_incident(key, alert)
        severity = Severity.from_label(alert.labels.get("severity"))
        row = AlertRow(
            incident=incident, notification_id=self.notification_id,
            fingerprint=alert.fingerprint, starts_at=alert.starts_at, ends_at=alert.ends_at,
            status=alert.status, name=alert.name, severity=severity, labels=alert.labels,
            annotations=alert.annotations, generator_url=alert.generator_url,
            first_seen_at=self.now, last_seen_at=self.now,
        )
        self.session.add(row)
        self.episodes[(alert.fingerprint, alert.starts_at)] = row
        if joined:
            self._entry(incident, TimelineKind.ALERT_ADDED, f"Alert {alert.name} joined",
                        {"fingerprint": alert.fingerprint, "status": alert.status})
        if severity.rank > Severity(incident.severity).rank:
            self._entry(incident, TimelineKind.SEVERITY_RAISED,
                        f"Severity raised from {incident.severity} to {severity}",
                        {"from": incident.severity, "to": severity.value})
            incident.severity = severity
        self._touch(incident)

    def _resolve_episode(self, episode: AlertRow, alert: Alert) -> None:
        episode.status = AlertStatus.RESOLVED
        episode.ends_at = alert.ends_at or self.now
        episode.last_seen_at = self.now
        incident = episode.incident
        if incident.resolved_at is None:
            self._entry(incident, TimelineKind.ALERT_RESOLVED, f"Alert {alert.name} resolved",
                        {"fingerprint": alert.fingerprint})
            self._touch(incident)

    def _open_incident(self, key: str) -> IncidentRow | None:
        if key not in self.open_by_key:
            self.open_by_key[key] = self.session.scalars(
                select(IncidentRow).where(
                    IncidentRow.group_key == key, IncidentRow.resolved_at.is_(None)
                )
            ).one_or_none()
        return self.open_by_key[key]

    def _create_incident(self, key: str, alert: Alert) -> IncidentRow:
        severity = Severity.from_label(alert.labels.get("severity"))
        service = next((alert.labels[k] for k in SERVICE_LABELS if alert.labels.get(k)), None)
        summary = alert.annotations.get("summary") or alert.annotations.get("description")
        incident = IncidentRow(
            title=f"{alert.name}: {summary}" if summary else alert.name,
            status=IncidentStatus.OPEN, severity=severity, service=service, source=SOURCE,
            group_key=key, labels=dict(self.notification.common_labels or alert.labels),
            opened_at=self.now, updated_at=self.now,
        )
        self.session.add(incident)
        self.session.flush()  # assigns incident_id for the timeline and audit rows
        self.open_by_key[key] = incident
        self.result.opened.append(incident.incident_id)
        self._entry(incident, TimelineKind.OPENED, f"Opened by alert {alert.name}",
                    {"fingerprint": alert.fingerprint, "group_key": key})
        audit.record(self.session, actor=ACTOR, action="incident.opened",
                     target_type="incident", target_id=incident.incident_id,
                     details={"group_key": key, "notification_id": self.notification_id})
        return incident

    def _resolve_incident(self, incident: IncidentRow) -> None:
        incident.status = IncidentStatus.RESOLVED
        incident.resolved_at = incident.updated_at = self.now
        incident.resolved_by = ACTOR
        self.open_by_key.pop(incident.group_key, None)
        self._entry(incident, TimelineKind.RESOLVED, "Resolved: all alerts resolved", {})
        audit.record(self.session, actor=ACTOR, action="incident.resolved",
                     target_type="incident", target_id=incident.incident_id,
                     details={"reason": "all alerts resolved"})
        self.result.resolved.append(incident.incident_id)

    def _group_key(self, alert: Alert) -> str:
        if self.group_by == GROUP_BY_ALERTMANAGER:
            return f"{self.notification.receiver}/{self.notification.group_key}"
        return f"{self.group_by}={alert.labels.get(self.group_by, '')}"

    def _touch(self, incident: IncidentRow) -> None:
        incident.updated_at = self.now
        self.touched[id(incident)] = incident

    def _entry(
        self, incident: IncidentRow, kind: TimelineKind, message: str, data: dict[str, Any]
    ) -> None:
        self.session.add(TimelineEntryRow(
            incident=incident, at=self.now, kind=kind, actor=ACTOR, message=message, data=data,
        ))
