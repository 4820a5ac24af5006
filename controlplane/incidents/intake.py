"""Alertmanager intake: notifications -> stored raw, alert episodes upserted, incidents opened,
grown, raised or resolved, with exactly one timeline entry per real change.

Works on a *batch* of deliveries in one transaction (see `writer.IntakeWriter`, which groups
concurrent webhook requests so that one commit serves many), with the same outcome as applying
them one by one in order. A batch costs a fixed handful of set-based statements (lookups with
IN, inserts as executemany), not a unit-of-work flush per row.

Idempotence rests on two unique keys: the notification's SHA-256 (an identical re-delivery is
counted, not re-applied) and the alert episode (`fingerprint`, `startsAt`), so a retry, an HA
pair or a repeat notification never opens a second incident or writes a second entry.
Grouping: alerts with the same group key join the group's open incident; the partial unique
index `ux_incident_open_group` keeps one open incident per key even across API replicas.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from controlplane.domain.alertmanager import SERVICE_LABELS, Alert, Notification
from controlplane.domain.models import AlertStatus, IncidentStatus, Severity, TimelineKind
from controlplane.storage import audit
from controlplane.storage.models import Base

# Table-level Core on the session's connection: on this hot path the ORM's execution layer
# costs more than the statements themselves.
_TABLES = Base.metadata.tables
NOTIFICATION, INCIDENT, ALERT = _TABLES["notification"], _TABLES["incident"], _TABLES["alert"]
TIMELINE, AUDIT = _TABLES["timeline_entry"], _TABLES["audit_event"]
OUTBOX = _TABLES["policy_outbox"]
_notification, _incident, _alert = NOTIFICATION.c, INCIDENT.c, ALERT.c

SOURCE = "alertmanager"
ACTOR = "alertmanager"
GROUP_BY_ALERTMANAGER = "alertmanager_group"


@dataclass(frozen=True)
class Delivery:
    """One validated notification: parsed, its JSON, the body's digest and where it came from
    (`alertmanager` for webhooks, `detector` for anomalies raised by the detection scheduler)."""

    notification: Notification
    payload: dict[str, Any]
    digest: str
    source: str = SOURCE

    @classmethod
    def of(
        cls,
        body: bytes,
        payload: dict[str, Any],
        notification: Notification,
        source: str = SOURCE,
    ) -> Delivery:
        return cls(notification, payload, hashlib.sha256(body).hexdigest(), source)


@dataclass
class IngestResult:
    notification_id: int
    duplicate: bool
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


def ingest(
    session: Session,
    deliveries: Sequence[Delivery],
    *,
    group_by: str = GROUP_BY_ALERTMANAGER,
    key_prefix: str = "",
    flap_seconds: float = 0,
) -> list[IngestResult]:
    """Apply deliveries in order inside the caller's transaction; one result per delivery.
    `key_prefix` keeps their incidents apart from those of alerts grouped the same way; a
    group firing again within `flap_seconds` of its incident's resolution reopens it."""
    return _Batch(session, group_by, key_prefix, flap_seconds).run(deliveries)


def ingest_alert(
    session: Session,
    alert: dict[str, Any],
    *,
    source: str,
    group_key: str,
    joins_others: bool = True,
    group_by: str = "service",
) -> IngestResult:
    """Raise one Alertmanager-shaped alert from inside the control plane (detection, capacity
    forecasts) through the same intake as webhooks, grouped by the alert's service label.
    With `joins_others` false (a forecast risk: not an outage, and never resolved by the
    outage's alerts resolving) it joins only incidents of its own source. `group_by` names
    the label alerts are grouped by (security findings: one incident per client)."""
    payload = {
        "version": "4",
        "receiver": source,
        "status": alert["status"],
        "alerts": [alert],
        "groupLabels": {"service": alert["labels"]["service"]},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "",
        "groupKey": f"{source}/{group_key}",
        "truncatedAlerts": 0,
    }
    body = json.dumps(payload, sort_keys=True).encode()
    delivery = Delivery.of(body, payload, Notification.model_validate(payload), source=source)
    prefix = "" if joins_others else f"{source}/"
    (result,) = ingest(session, [delivery], group_by=group_by, key_prefix=prefix)
    return result


@dataclass
class _Incident:
    incident_id: int
    group_key: str
    severity: Severity
    open: bool
    firing: int  # firing alerts, kept current in memory while the batch is applied
    changed: bool = False  # severity, alerts or state changed: write updated_at (and severity)


@dataclass
class _Episode:
    incident: _Incident
    status: str
    alert_id: int | None = None  # None while it is a pending insert
    row: dict[str, Any] | None = None  # the pending insert, when new in this batch


class _Batch:
    def __init__(
        self, session: Session, group_by: str, key_prefix: str = "", flap_seconds: float = 0
    ) -> None:
        self.execute = session.connection().execute
        self.group_by, self.key_prefix = group_by, key_prefix
        self.now = datetime.now(UTC)
        self.flap_since = self.now - timedelta(seconds=flap_seconds) if flap_seconds else None
        #: Per group key, its incident resolved within the flap window (to reopen, not open).
        self.recent_by_key: dict[str, int] = {}
        self.actor = ACTOR  # the source of the delivery being applied
        self.incidents: dict[int, _Incident] = {}
        self.open_by_key: dict[str, _Incident] = {}
        self.episodes: dict[tuple[str, datetime], _Episode] = {}
        self.new_alerts: list[dict[str, Any]] = []
        self.resolved_alerts: list[dict[str, Any]] = []
        self.timeline: list[dict[str, Any]] = []
        self.audit: list[dict[str, Any]] = []

    def run(self, deliveries: Sequence[Delivery]) -> list[IngestResult]:
        results, fresh = self._store_notifications(deliveries)
        alerts = [(r, d, a) for r, d in fresh for a in d.notification.alerts]
        self._load_state([(d.notification, a) for _, d, a in alerts])
        for result, delivery, alert in alerts:
            self._apply(result, delivery, alert)
        for result, _ in fresh:
            result.updated = [
                i
                for i in dict.fromkeys(result.updated)
                if i not in result.opened and i not in result.resolved
            ]
        self._write()
        return results

    # -- notifications -------------------------------------------------------------------
    def _store_notifications(
        self, deliveries: Sequence[Delivery]
    ) -> tuple[list[IngestResult], list[tuple[IngestResult, Delivery]]]:
        digests = {d.digest for d in deliveries}
        known = dict(
            self.execute(
                select(_notification.payload_sha256, _notification.notification_id).where(
                    _notification.payload_sha256.in_(digests)
                )
            ).all()
        )
        repeats: dict[str, int] = {}
        new: dict[str, Delivery] = {}
        for d in deliveries:
            if d.digest in known or d.digest in new:
                repeats[d.digest] = repeats.get(d.digest, 0) + 1
            else:
                new[d.digest] = d
        if new:
            inserted = self.execute(
                insert(NOTIFICATION).returning(
                    _notification.payload_sha256,
                    _notification.notification_id,
                    sort_by_parameter_order=True,
                ),
                [
                    {
                        "source": d.source,
                        "payload_sha256": d.digest,
                        "group_key": d.notification.group_key,
                        "status": d.notification.status,
                        "payload": d.payload,
                        "received_at": self.now,
                        "last_received_at": self.now,
                        "delivery_count": 1,
                    }
                    for d in new.values()
                ],
            ).all()
            known.update(inserted)
        for digest, extra in repeats.items():
            self.execute(
                update(NOTIFICATION)
                .where(_notification.payload_sha256 == digest)
                .values(
                    delivery_count=_notification.delivery_count + extra, last_received_at=self.now
                )
            )
        results, fresh = [], []
        for d in deliveries:
            is_first = new.get(d.digest) is d
            result = IngestResult(known[d.digest], duplicate=not is_first)
            results.append(result)
            if is_first:
                fresh.append((result, d))
        return results, fresh

    # -- loading what the batch touches ---------------------------------------------------
    def _load_state(self, alerts: list[tuple[Notification, Alert]]) -> None:
        if not alerts:
            return
        # Two plain INs, not a row-value IN: SQLite scans the whole index for the latter.
        rows = self.execute(
            select(
                _alert.alert_id,
                _alert.incident_id,
                _alert.fingerprint,
                _alert.starts_at,
                _alert.status,
            ).where(
                _alert.fingerprint.in_({a.fingerprint for _, a in alerts}),
                _alert.starts_at.in_({a.starts_at for _, a in alerts}),
            )
        ).all()
        keys = {self._group_key(n, a) for n, a in alerts}
        incident_rows = self.execute(
            select(
                _incident.incident_id,
                _incident.group_key,
                _incident.severity,
                _incident.resolved_at,
            ).where(
                or_(
                    _incident.incident_id.in_({r.incident_id for r in rows}),
                    _incident.group_key.in_(keys) & _incident.resolved_at.is_(None),
                )
            )
        ).all()
        open_ids = [r.incident_id for r in incident_rows if r.resolved_at is None]
        firing: dict[int, int] = (
            dict(
                self.execute(
                    select(_alert.incident_id, func.count())
                    .where(_alert.incident_id.in_(open_ids), _alert.status == "firing")
                    .group_by(_alert.incident_id)
                ).all()
            )
            if open_ids
            else {}
        )
        for r in incident_rows:
            incident = _Incident(
                r.incident_id,
                r.group_key,
                Severity(r.severity),
                open=r.resolved_at is None,
                firing=firing.get(r.incident_id, 0),
            )
            self.incidents[r.incident_id] = incident
            if incident.open:
                self.open_by_key[r.group_key] = incident
        for episode in rows:
            self.episodes[(episode.fingerprint, episode.starts_at)] = _Episode(
                self.incidents[episode.incident_id], episode.status, alert_id=episode.alert_id
            )
        if self.flap_since is not None:
            self._load_recently_resolved(keys - set(self.open_by_key))

    def _load_recently_resolved(self, keys: set[str]) -> None:
        """Incidents of these groups resolved by their alerts within the flap window."""
        if not keys:
            return
        rows = self.execute(
            select(_incident.incident_id, _incident.group_key)
            .where(
                _incident.group_key.in_(keys),
                _incident.resolved_at >= self.flap_since,
                _incident.resolved_by == _incident.source,  # not resolved by a person
            )
            .order_by(_incident.resolved_at)
        ).all()
        self.recent_by_key.update({r.group_key: r.incident_id for r in rows})  # the latest

    # -- applying one alert ---------------------------------------------------------------
    def _apply(self, result: IngestResult, delivery: Delivery, alert: Alert) -> None:
        self.actor = delivery.source
        episode = self.episodes.get((alert.fingerprint, alert.starts_at))
        if episode is None:
            self._add_episode(result, delivery, alert)
        elif episode.status == AlertStatus.FIRING and alert.status == "resolved":
            self._resolve_episode(result, episode, alert)
        # Otherwise a repeat (or a stale "firing" after the resolution): nothing changed.

    def _add_episode(self, result: IngestResult, delivery: Delivery, alert: Alert) -> None:
        notification = delivery.notification
        key = self._group_key(notification, alert)
        incident = self.open_by_key.get(key)
        if incident is None and alert.status == "resolved":
            return  # resolved before we ever saw it fire, and nothing open to attach it to
        severity = Severity.from_label(alert.labels.get("severity"))
        if incident is None and key in self.recent_by_key and alert.status == "firing":
            incident = self._reopen(result, alert, key, self.recent_by_key.pop(key))
        elif incident is None:
            incident = self._open_incident(result, delivery, alert, key, severity)
        else:
            self._entry(
                incident,
                TimelineKind.ALERT_ADDED,
                f"Alert {alert.name} joined",
                {"fingerprint": alert.fingerprint, "status": alert.status},
            )
            incident.changed = True
            result.updated.append(incident.incident_id)
        row = {
            "incident_id": incident.incident_id,
            "notification_id": result.notification_id,
            "fingerprint": alert.fingerprint,
            "starts_at": alert.starts_at,
            "ends_at": alert.ends_at,
            "status": alert.status,
            "name": alert.name,
            "severity": severity.value,
            "labels": alert.labels,
            "annotations": alert.annotations,
            "generator_url": alert.generator_url,
            "first_seen_at": self.now,
            "last_seen_at": self.now,
        }
        self.new_alerts.append(row)
        self.episodes[(alert.fingerprint, alert.starts_at)] = _Episode(
            incident, alert.status, row=row
        )
        if alert.status == "firing":
            incident.firing += 1
        if severity.rank > incident.severity.rank:
            self._entry(
                incident,
                TimelineKind.SEVERITY_RAISED,
                f"Severity raised from {incident.severity} to {severity}",
                {"from": incident.severity.value, "to": severity.value},
            )
            incident.severity = severity
            incident.changed = True

    def _resolve_episode(self, result: IngestResult, episode: _Episode, alert: Alert) -> None:
        episode.status = AlertStatus.RESOLVED
        ends_at = alert.ends_at or self.now
        if episode.row is not None:
            episode.row.update(status=AlertStatus.RESOLVED, ends_at=ends_at)
        else:
            self.resolved_alerts.append({"id": episode.alert_id, "ends": ends_at})
        incident = episode.incident
        incident.firing -= 1
        if not incident.open:
            return  # already resolved (by a person, say): the alert catches up silently
        self._entry(
            incident,
            TimelineKind.ALERT_RESOLVED,
            f"Alert {alert.name} resolved",
            {"fingerprint": alert.fingerprint},
        )
        incident.changed = True
        if incident.firing > 0:
            result.updated.append(incident.incident_id)
            return
        incident.open = False
        self.open_by_key.pop(incident.group_key, None)
        # Written now, not with the batch: it frees the group's open-incident key for a
        # later delivery of this batch that opens the next incident of the group.
        self.execute(
            update(INCIDENT)
            .where(_incident.incident_id == incident.incident_id)
            .values(status=IncidentStatus.RESOLVED, resolved_at=self.now, resolved_by=self.actor)
        )
        self._entry(incident, TimelineKind.RESOLVED, "Resolved: all alerts resolved", {})
        self._audit("incident.resolved", incident, {"reason": "all alerts resolved"})
        result.resolved.append(incident.incident_id)

    def _open_incident(
        self,
        result: IngestResult,
        delivery: Delivery,
        alert: Alert,
        key: str,
        severity: Severity,
    ) -> _Incident:
        notification = delivery.notification
        service = next((alert.labels[k] for k in SERVICE_LABELS if alert.labels.get(k)), None)
        summary = alert.annotations.get("summary") or alert.annotations.get("description")
        # Inserted at once: later rows of the batch need its id.
        incident_id = self.execute(
            insert(INCIDENT).returning(_incident.incident_id),
            {
                "title": f"{alert.name}: {summary}" if summary else alert.name,
                "status": IncidentStatus.OPEN,
                "severity": severity,
                "service": service,
                "source": delivery.source,
                "group_key": key,
                "labels": dict(notification.common_labels or alert.labels),
                "opened_at": self.now,
                "updated_at": self.now,
            },
        ).scalar_one()
        incident = _Incident(incident_id, key, severity, open=True, firing=0, changed=True)
        self.incidents[incident_id] = self.open_by_key[key] = incident
        result.opened.append(incident_id)
        self._entry(
            incident,
            TimelineKind.OPENED,
            f"Opened by alert {alert.name}",
            {"fingerprint": alert.fingerprint, "group_key": key},
        )
        self._audit(
            "incident.opened",
            incident,
            {"group_key": key, "notification_id": result.notification_id},
        )
        return incident

    def _reopen(self, result: IngestResult, alert: Alert, key: str, incident_id: int) -> _Incident:
        """The group fired again soon after its incident resolved: the same incident opens
        again, marked flapping, instead of a new incident and a new page."""
        severity = self.execute(
            update(INCIDENT)
            .where(_incident.incident_id == incident_id, _incident.resolved_at.is_not(None))
            .values(status=IncidentStatus.OPEN, resolved_at=None, resolved_by=None)
            .returning(_incident.severity)
        ).scalar_one()
        incident = _Incident(
            incident_id, key, Severity(severity), open=True, firing=0, changed=True
        )
        self.incidents[incident_id] = self.open_by_key[key] = incident
        result.updated.append(incident_id)
        self._entry(
            incident,
            TimelineKind.REOPENED,
            f"Reopened: alert {alert.name} fired again soon after it resolved (flapping)",
            {"fingerprint": alert.fingerprint, "flapping": True},
        )
        self._audit("incident.reopened", incident, {"flapping": True, "alert": alert.name})
        return incident

    # -- writing --------------------------------------------------------------------------
    def _write(self) -> None:
        execute = self.execute
        if self.new_alerts:
            execute(insert(ALERT), self.new_alerts)
        if self.resolved_alerts:
            execute(
                update(ALERT)
                .where(_alert.alert_id == bindparam("id"))
                .values(
                    status=AlertStatus.RESOLVED, ends_at=bindparam("ends"), last_seen_at=self.now
                ),
                self.resolved_alerts,
            )
        changed = [i for i in self.incidents.values() if i.changed]
        if changed:  # an incident opened in this batch is written again: one statement for all
            execute(
                update(INCIDENT)
                .where(_incident.incident_id == bindparam("id"))
                .values(severity=bindparam("sev"), updated_at=self.now),
                [{"id": i.incident_id, "sev": i.severity.value} for i in changed],
            )
        still_open = [
            {"incident_id": i.incident_id, "created_at": self.now} for i in changed if i.open
        ]
        if still_open:  # for the policy loop, committed with the change itself
            execute(insert(OUTBOX), still_open)
        if self.timeline:
            execute(insert(TIMELINE), self.timeline)
        if self.audit:
            execute(insert(AUDIT), self.audit)

    def _group_key(self, notification: Notification, alert: Alert) -> str:
        if self.group_by == GROUP_BY_ALERTMANAGER:
            return f"{notification.receiver}/{notification.group_key}"
        return f"{self.key_prefix}{self.group_by}={alert.labels.get(self.group_by, '')}"

    def _entry(
        self, incident: _Incident, kind: TimelineKind, message: str, data: dict[str, Any]
    ) -> None:
        self.timeline.append(
            {
                "incident_id": incident.incident_id,
                "at": self.now,
                "kind": kind,
                "actor": self.actor,
                "message": message,
                "data": data,
            }
        )

    def _audit(self, action: str, incident: _Incident, details: dict[str, Any]) -> None:
        self.audit.append(
            audit.entry(
                actor=self.actor,
                action=action,
                target_type="incident",
                target_id=incident.incident_id,
                details=details,
                at=self.now,
            )
        )
