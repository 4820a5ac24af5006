"""ORM rows (`<Thing>Row`, singular snake tables, `_at` UTC datetimes, `_id` keys).

The Alembic migrations in `migrations/versions` are the source of truth for the schema; a test
checks that these models and the migrated schema agree.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on SQLite (which stores naive text) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps timezone-aware UTC only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonDoc = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
Id = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, dict[str, Any]: JsonDoc}


class NotificationRow(Base):
    """A webhook notification exactly as received; identical re-deliveries bump the counter."""

    __tablename__ = "notification"

    notification_id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    payload_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    group_key: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_received_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivery_count: Mapped[int] = mapped_column(Integer, default=1)


class IncidentRow(Base):
    __tablename__ = "incident"
    __table_args__ = (
        # One open incident per group: concurrent writers (API replicas on PostgreSQL) cannot
        # open a second one for the same key; the loser retries and joins the winner's.
        Index(
            "ux_incident_open_group",
            "group_key",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index("ix_incident_status_opened", "status", "opened_at"),
        Index("ix_incident_service", "service"),
    )

    incident_id: Mapped[int] = mapped_column(Id, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    service: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(32))
    group_key: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, Any]]
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(255))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(255))

    alerts: Mapped[list[AlertRow]] = relationship(
        back_populates="incident", order_by="AlertRow.alert_id"
    )
    timeline: Mapped[list[TimelineEntryRow]] = relationship(
        back_populates="incident", order_by="TimelineEntryRow.timeline_entry_id"
    )
    evidence: Mapped[list[EvidenceRow]] = relationship(order_by="EvidenceRow.evidence_id")


class AlertRow(Base):
    """One alert episode: Alertmanager's `fingerprint` (the label set) plus its `startsAt`."""

    __tablename__ = "alert"
    __table_args__ = (UniqueConstraint("fingerprint", "starts_at", name="ux_alert_episode"),)

    alert_id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.incident_id"), index=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notification.notification_id"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    severity: Mapped[str] = mapped_column(String(16))
    labels: Mapped[dict[str, Any]]
    annotations: Mapped[dict[str, Any]]
    generator_url: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    incident: Mapped[IncidentRow] = relationship(back_populates="alerts")


class TimelineEntryRow(Base):
    __tablename__ = "timeline_entry"

    timeline_entry_id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.incident_id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    incident: Mapped[IncidentRow] = relationship(back_populates="timeline")


class AuditEventRow(Base):
    """Append-only: database triggers refuse UPDATE and DELETE on this table."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_target", "target_type", "target_id"),)

    audit_event_id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiTokenRow(Base):
    """An API token: only the SHA-256 of the secret is stored (tokens are 256-bit random)."""

    __tablename__ = "api_token"

    api_token_id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None]


class EvidenceRow(Base):
    """What raised or joined an incident: an anomaly (query, values, scores; kind 'anomaly') or
    a capacity forecast crossing its limit (kind 'capacity_forecast')."""

    __tablename__ = "evidence"

    evidence_id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.incident_id"), index=True)
    kind: Mapped[str] = mapped_column(String(32), default="anomaly", server_default="anomaly")
    signal: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(255))
    onset_at: Mapped[datetime]
    peak_score: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]]


class SignalStateRow(Base):
    """Where each watched signal stands: ok, anomalous or no_data (source down, bad query)."""

    __tablename__ = "signal_state"

    signal: Mapped[str] = mapped_column(String(200), primary_key=True)
    service: Mapped[str] = mapped_column(String(255))
    query: Mapped[str] = mapped_column(Text)
    detector: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_point_at: Mapped[datetime | None]
    last_score: Mapped[float | None]
    #: The last point's value and the band the recent window expects (`yhat` its median,
    #: `yhat_lower`/`yhat_upper` +- 3 robust standard deviations), exported on /metrics.
    last_value: Mapped[float | None]
    yhat: Mapped[float | None]
    yhat_lower: Mapped[float | None]
    yhat_upper: Mapped[float | None]
    last_success_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The open anomaly episode, so that the next worker to own the signal carries it on.
    episode: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)


class WorkerRow(Base):
    """A running `aiops worker` (or `serve` with its loops) and its last heartbeat: the live
    members that detection signals are shared among."""

    __tablename__ = "worker"

    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime] = mapped_column(index=True)


class SignalOwnerRow(Base):
    """Which worker scores a signal. Claimed by a conditional update; a worker writes a
    signal's alerts and state only while this row names it (the fence)."""

    __tablename__ = "signal_owner"

    signal: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(200), index=True)
    token: Mapped[int] = mapped_column(BigInteger)
    claimed_at: Mapped[datetime]


class LeaseRow(Base):
    """Singleton work (the policy decide step, scheduled capacity reports): one holder at a
    time until `expires_at`. `token` grows with every change of holder and fences the
    holder's writes: one that lost its lease cannot commit as if it held it."""

    __tablename__ = "lease"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(BigInteger)
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class RedPointRow(Base):
    """Per service, operation and minute: requests, errors and a latency histogram (from spans)."""

    __tablename__ = "red_point"
    __table_args__ = (UniqueConstraint("service", "operation", "minute", name="ux_red_point"),)

    red_point_id: Mapped[int] = mapped_column(Id, primary_key=True)
    service: Mapped[str] = mapped_column(String(255))
    operation: Mapped[str] = mapped_column(String(255))
    minute: Mapped[datetime] = mapped_column(index=True)
    requests: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    latency_buckets: Mapped[dict[str, Any]]


class ServiceEdgeRow(Base):
    """Per minute: calls and errors from one service to another (parent/child spans)."""

    __tablename__ = "service_edge"
    __table_args__ = (UniqueConstraint("caller", "callee", "minute", name="ux_service_edge"),)

    service_edge_id: Mapped[int] = mapped_column(Id, primary_key=True)
    caller: Mapped[str] = mapped_column(String(255))
    callee: Mapped[str] = mapped_column(String(255))
    minute: Mapped[datetime] = mapped_column(index=True)
    calls: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)


class ReportRow(Base):
    """A generated report (capacity forecasts): its JSON record and the rendered HTML and Markdown.

    `scheduled_for` is set for scheduled runs and unique per kind, so that of several control
    plane replicas exactly one produces each scheduled report.
    """

    __tablename__ = "report"
    __table_args__ = (UniqueConstraint("kind", "scheduled_for", name="ux_report_schedule"),)

    report_id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[str] = mapped_column(String(32))
    requested_by: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    scheduled_for: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]
    signals: Mapped[int] = mapped_column(Integer, default=0)
    at_risk: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None]
    html: Mapped[str | None] = mapped_column(Text)
    markdown: Mapped[str | None] = mapped_column(Text)


class DecisionRow(Base):
    """What the policy engine decided for one incident and one policy, and what came of it.

    Unique per (incident, policy): a policy decides once per incident, whatever replica
    evaluates it. Execution is claimed with a conditional update (status `approved` ->
    `executing`, with a lease), so each decision runs at most once; a lease that expires
    mid-run hands the decision to a human (`needs_attention`), it is never re-run blindly.
    """

    __tablename__ = "decision"
    __table_args__ = (
        UniqueConstraint("incident_id", "policy", name="ux_decision_incident_policy"),
        Index("ix_decision_status_created", "status", "created_at"),
    )

    decision_id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.incident_id"), index=True)
    policy: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(255), index=True)
    params: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(Text)
    checks: Mapped[list[Any]] = mapped_column(JsonDoc)
    plan: Mapped[dict[str, Any] | None]
    runbook: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    reviewed_by: Mapped[str | None] = mapped_column(String(255))
    reviewed_at: Mapped[datetime | None]
    review_comment: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[dict[str, Any] | None]

    @property
    def plan_digest(self) -> str:
        """A fingerprint of what approving this decision approves (action, target, params,
        plan, policy version). A review sends the one it read, so it cannot approve a plan
        that was made again since."""
        what = [self.action, self.target, self.params, self.plan, self.policy_version]
        canonical = json.dumps(what, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class PolicyOutboxRow(Base):
    """An incident the policy loop has to look at: written by the intake in the transaction
    that opened or changed the incident, consumed (deleted) by the decide step. Unlike a time
    watermark this cannot miss an incident whose commit landed late."""

    __tablename__ = "policy_outbox"

    policy_outbox_id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(Id)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AutomationStateRow(Base):
    """The kill switch (one row): while paused, no decision changes anything."""

    __tablename__ = "automation_state"

    automation_state_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paused: Mapped[bool]
    changed_by: Mapped[str] = mapped_column(String(255))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)


class MessageRow(Base):
    """One message for one notification channel: the outbox the notifier delivers from.

    Routed from the audit log in the transaction that advances the notifier's cursor, so an
    event is routed exactly once; delivered at least once (retried with backoff until sent,
    or `failed` when the channel refuses it for good). `dedup_key` is unique: one event gives
    a channel one message. A grouped message (`group_key`) collects the events of its window.
    """

    __tablename__ = "message"
    __table_args__ = (Index("ix_message_status_next", "status", "next_attempt_at"),)

    message_id: Mapped[int] = mapped_column(Id, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    group_key: Mapped[str | None] = mapped_column(String(255), index=True)
    channel: Mapped[str] = mapped_column(String(64), index=True)
    route: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(32))
    incident_id: Mapped[int | None] = mapped_column(Id, index=True)
    status: Mapped[str] = mapped_column(String(16))
    events: Mapped[list[Any]] = mapped_column(JsonDoc)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    receipt: Mapped[str | None] = mapped_column(Text)


class CursorRow(Base):
    """How far a consumer of the audit log has read (the notifier's routing position)."""

    __tablename__ = "cursor"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Id)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApprovalLinkUseRow(Base):
    """A signed approval link that was used: links are single-use, so its nonce is kept."""

    __tablename__ = "approval_link_use"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision_id: Mapped[int] = mapped_column(Id, index=True)
    used_by: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime] = mapped_column(default=utcnow)


class MaintenanceWindowRow(Base):
    """A maintenance window (see controlplane/domain/maintenance.py); cancelled, never deleted."""

    __tablename__ = "maintenance_window"

    window_id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    service: Mapped[str | None] = mapped_column(String(255))
    namespace: Mapped[str | None] = mapped_column(String(255))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None] = mapped_column(index=True)
    recurrence: Mapped[str | None] = mapped_column(String(100))
    duration_minutes: Mapped[float | None]
    mute_paging: Mapped[bool]
    automation: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(255))


class ProposalRow(Base):
    """An action an agent (the MCP server) proposed for an incident: the policy loop plans it
    with the named policy, every guardrail, and at most in approval mode; a person decides."""

    __tablename__ = "proposal"

    proposal_id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(Id, index=True)
    policy: Mapped[str] = mapped_column(String(64))
    proposed_by: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    decision_id: Mapped[int | None] = mapped_column(Id)
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccessPointRow(Base):
    """Per service, path, client and minute, from server spans' HTTP attributes: requests,
    refusals (401 and 403), throttles (429), requests no route of the service matched (no
    `http.route`) and the user agent: what security detection reads."""

    __tablename__ = "access_point"
    __table_args__ = (
        UniqueConstraint("service", "route", "client", "minute", name="ux_access_point"),
    )

    access_point_id: Mapped[int] = mapped_column(Id, primary_key=True)
    service: Mapped[str] = mapped_column(String(255))
    route: Mapped[str] = mapped_column(String(255))
    client: Mapped[str] = mapped_column(String(255), index=True)
    minute: Mapped[datetime] = mapped_column(index=True)
    requests: Mapped[int] = mapped_column(Integer)
    denied: Mapped[int] = mapped_column(Integer)
    throttled: Mapped[int] = mapped_column(Integer)
    user_agent: Mapped[str] = mapped_column(String(255))
    unrouted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
