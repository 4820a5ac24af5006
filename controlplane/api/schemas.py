"""Public API shapes (`XPublic`, `XsPublic(data, count)`), separate from ORM rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controlplane.domain.models import DecisionStatus, IncidentStatus, Role, Severity
from controlplane.domain.storable import SPACES, WORDS, StoredText, StoredTime, blank


class _FromRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class IncidentPublic(_FromRow):
    incident_id: int
    title: str
    status: IncidentStatus
    severity: Severity
    service: str | None
    source: str
    group_key: str
    labels: dict[str, Any]
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None


class IncidentsPublic(BaseModel):
    data: list[IncidentPublic]
    count: int = Field(description="Incidents matching the filter, over all pages.")
    limit: int
    offset: int


class AlertPublic(_FromRow):
    alert_id: int
    fingerprint: str
    name: str
    status: str
    severity: Severity
    starts_at: datetime
    ends_at: datetime | None
    labels: dict[str, Any]
    annotations: dict[str, Any]
    generator_url: str
    first_seen_at: datetime
    last_seen_at: datetime


class TimelineEntryPublic(_FromRow):
    timeline_entry_id: int
    at: datetime
    kind: str
    actor: str
    message: str
    data: dict[str, Any]


class EvidencePublic(_FromRow):
    evidence_id: int
    kind: str = Field(description="'anomaly' (detection) or 'capacity_forecast'.")
    signal: str
    service: str
    onset_at: datetime
    peak_score: float
    created_at: datetime
    data: dict[str, Any] = Field(
        description="Anomaly: query, detector and parameters, threshold, and the window of "
        "points (at, value, score) around the onset. Capacity forecast: the limit, crossing "
        "dates and probability, the model and its backtest error, the forecast and report_id."
    )
    graph_url: str | None = Field(
        None, description="The evidence's query in the Prometheus graph, around its onset."
    )


class RootCauseHintPublic(_FromRow):
    rank: int
    service: str
    signal: str
    onset_at: datetime
    score: float | None
    reasons: list[str]


class IncidentDetailPublic(IncidentPublic):
    alerts: list[AlertPublic]
    timeline: list[TimelineEntryPublic]
    evidence: list[EvidencePublic] = Field(default_factory=list)
    root_cause_hints: list[RootCauseHintPublic] = Field(
        default_factory=list,
        description="Candidate causes, most likely first: deepest anomalous callee on the "
        "trace dependency graph, then earliest onset.",
    )
    decisions: list[DecisionPublic] = Field(
        default_factory=list, description="What the policies decided for this incident."
    )
    links: dict[str, str] = Field(
        default_factory=dict,
        description="Its console page, and its evidence query in Prometheus' graph and Grafana "
        "Explore over its time range (when those URLs are configured).",
    )
    runbooks: list[str] = Field(
        default_factory=list,
        description="Runbooks linked by the matching policies and by the alerts' `runbook` "
        "annotation; read them at /api/v1/runbooks/{name}.",
    )


class SignalPublic(_FromRow):
    signal: str
    service: str
    query: str
    detector: str
    status: str = Field(description="ok, anomalous, or no_data (source down or bad query).")
    last_error: str | None
    last_point_at: datetime | None
    last_score: float | None
    last_success_at: datetime | None
    updated_at: datetime


class EdgePublic(_FromRow):
    caller: str
    callee: str
    calls: int
    errors: int


class RedPointPublic(BaseModel):
    at: datetime
    value: float | None


class TransitionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: StoredText | None = Field(
        None, max_length=2000, description="Why; kept in the timeline."
    )


class WebhookAccepted(BaseModel):
    status: str = "accepted"
    notification_id: int
    duplicate: bool = Field(description="True when this exact payload was already stored.")
    opened: list[int]
    updated: list[int]
    resolved: list[int]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$",
        description="1-128 letters, digits or _.@-, starting with a letter or digit.",
    )
    role: Role


class TokenPublic(_FromRow):
    api_token_id: int
    name: str
    role: Role
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="The secret. Shown once; only its hash is stored.")


class WhoAmI(BaseModel):
    name: str
    role: Role


class FieldError(BaseModel):
    field: str
    message: str
    value: Any = None


class ErrorBody(BaseModel):
    detail: str
    errors: list[FieldError] = []


class ReportPublic(_FromRow):
    report_id: int
    kind: str
    trigger: str = Field(description="schedule, cli or api.")
    requested_by: str
    status: str = Field(description="running, done or failed.")
    scheduled_for: datetime | None
    created_at: datetime
    finished_at: datetime | None
    signals: int = Field(description="Capacity: signals forecast. Noise: incidents counted.")
    at_risk: int = Field(
        description="Capacity: signals that may cross their limit within the lead time. "
        "Noise: alerts that are candidates to delete."
    )
    error: str | None


class ReportsPublic(BaseModel):
    data: list[ReportPublic]
    count: int = Field(description="Reports matching the filter, over all pages.")
    limit: int
    offset: int


class DecisionPublic(_FromRow):
    decision_id: int
    incident_id: int
    policy: str
    policy_version: str
    mode: str = Field(description="dry_run, approval or auto.")
    action: str
    target: str
    params: dict[str, Any]
    status: DecisionStatus
    reason: str
    checks: list[dict[str, Any]] = Field(description="Every guardrail evaluated, with its verdict.")
    plan: dict[str, Any] | None = Field(
        description="before, after, diff, summary and the API server's dry-run answer."
    )
    runbook: str | None
    created_at: datetime
    updated_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_comment: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: dict[str, Any] | None = Field(description="execute, verify and rollback outcomes.")
    plan_digest: str = Field(
        description="Fingerprint of what an approval approves; send it back when reviewing."
    )
    links: dict[str, str] = Field(
        default_factory=dict,
        description="On a single decision: its approval page, and its incident's evidence in "
        "Prometheus and Grafana Explore around it (when those URLs are configured).",
    )


class DecisionsPublic(BaseModel):
    data: list[DecisionPublic]
    count: int
    limit: int
    offset: int


#: Required text holds more than spaces (the validators say so; the schema says it too).
_WORDS: dict[str, Any] = {"pattern": WORDS}


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: StoredText = Field(
        ..., min_length=1, max_length=2000, description="Why (required).", json_schema_extra=_WORDS
    )
    plan_digest: str | None = Field(
        None,
        max_length=64,
        description="The decision's `plan_digest` as the reviewer read it: if the decision was "
        "planned again since, the review is refused (409) instead of approving a plan nobody "
        "read. The console always sends it.",
    )


class ReplanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: StoredText = Field(
        ..., min_length=1, max_length=2000, description="Why (required).", json_schema_extra=_WORDS
    )


class AutomationPublic(_FromRow):
    paused: bool
    changed_by: str
    changed_at: datetime
    reason: str | None


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: StoredText = Field(
        min_length=1,
        max_length=2000,
        description="Why automation is paused or resumed (required; audited).",
        json_schema_extra=_WORDS,
    )

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if blank(value):
            raise ValueError("a reason is required, not only spaces")
        return value.strip(SPACES)


class AuditEventPublic(_FromRow):
    audit_event_id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]


class AuditPublic(BaseModel):
    data: list[AuditEventPublic]
    count: int
    limit: int
    offset: int


class RunbookPublic(BaseModel):
    name: str
    title: str


class RunbookDetailPublic(RunbookPublic):
    markdown: str
    policies: list[str] = Field(description="Loaded policies that link this runbook.")


class PolicyPublic(BaseModel):
    name: str
    version: str
    description: str
    runbook: str | None
    enabled: bool
    mode: str
    action: dict[str, Any]
    match: dict[str, Any]
    guardrails: dict[str, Any]
    verify: dict[str, Any]
    rollback_on_failure: bool


class PoliciesPublic(BaseModel):
    directory: str | None = Field(description="Where the policies were loaded from.")
    policies: list[PolicyPublic]
    errors: list[str] = Field(description="Why files failed to load (then none are active).")


class BacktestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: StoredTime | None = Field(None, description="Incidents opened at or after.")
    until: StoredTime | None = Field(None, description="Incidents opened before.")


class BacktestHours(BaseModel):
    max: int = Field(description="Most actions in one hour.")
    busiest_hour: str | None = Field(description="YYYY-MM-DDTHH of that hour (UTC).")
    hours_with_actions: int
    mean_in_those_hours: float


class BacktestSummary(BaseModel):
    since: str | None
    until: str | None
    incidents: int = Field(description="Incidents opened in the window.")
    decisions: int
    by_policy: dict[str, dict[str, int]] = Field(description="Outcome counts per policy.")
    refused_by_guardrail: dict[str, int]
    actions_per_hour: BacktestHours
    cost: BacktestCost


class BacktestCost(BaseModel):
    currency: str
    by_policy: dict[str, dict[str, float]] = Field(
        description="Per policy: added_per_hour (its changes, summed), spent (each from its "
        "moment to the window's end) and unpriced (changes nothing priced)."
    )


class BacktestDecision(BaseModel):
    at: str = Field(description="When the alert was first seen (the decision's moment).")
    incident_id: int
    incident: str
    policy: str
    mode: str
    target: str
    status: DecisionStatus
    outcome: str = Field(description="would run, would ask for approval, would only plan...")
    reason: str
    refused_by: list[str] = Field(description="Guardrails that refused it.")
    cost_per_hour: float | None = Field(description="What its change would add per hour.")
    spent: float | None = Field(description="That, from its moment to the window's end.")


class BacktestPublic(BaseModel):
    summary: BacktestSummary
    decisions: list[BacktestDecision]


class ServiceCount(BaseModel):
    service: str
    open: int


class IncidentCounts(BaseModel):
    open: int
    by_severity: dict[str, int]
    by_service: list[ServiceCount] = Field(description="The services with most open incidents.")


class SwitchPublic(BaseModel):
    paused: bool
    changed_by: str
    reason: str | None


class SloBurnPublic(BaseModel):
    signal: str
    service: str
    score: float | None
    status: str


class SourceHealthPublic(BaseModel):
    signal: str
    service: str
    status: str
    last_success_at: datetime | None
    last_error: str | None


class CapacitySummaryPublic(BaseModel):
    report_id: int
    status: str
    created_at: datetime
    signals: int
    at_risk: int


class PrometheusProbe(BaseModel):
    configured: bool
    reachable: bool | None
    detail: str


class OverviewPublic(BaseModel):
    generated_at: datetime
    incidents: IncidentCounts
    actions_24h: dict[str, int] = Field(description="Decisions of the last 24 h by status.")
    automation: SwitchPublic
    slo_burn: list[SloBurnPublic]
    signals: list[SourceHealthPublic]
    capacity: CapacitySummaryPublic | None = Field(description="The latest capacity report.")
    prometheus: PrometheusProbe


class ReadinessPublic(BaseModel):
    status: Literal["ready", "unavailable"]
    store: str = Field(description="ok, or why the store cannot take a write.")


class ReportDocumentPublic(ReportPublic):
    document: dict[str, Any] | None = Field(description="The report itself (JSON form).")


def media(description: str, *types: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entry of a 200 that is not a JSON model (text, streams)."""
    content = {t: {"schema": {"type": "object"}} if t == "application/json" else {} for t in types}
    return {200: {"description": description, "content": content}}


_ERROR_MEANINGS = {
    400: "The request cannot be read (bad JSON, body too large).",
    401: "No valid bearer token.",
    403: "The token's role may not do this.",
    404: "No such object.",
    409: "The object is not in a state that allows this.",
    413: "The body is larger than api.max_body_bytes.",
    415: "The Content-Type is not one this endpoint reads.",
    422: "A field has a bad value (the envelope names it).",
    503: "The store is unavailable: retry after Retry-After (Alertmanager does).",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route's error answers, all in the error envelope."""
    return {code: {"model": ErrorBody, "description": _ERROR_MEANINGS[code]} for code in codes}


IncidentDetailPublic.model_rebuild()


class MessagePublic(_FromRow):
    """One message of the notification outbox."""

    message_id: int
    channel: str
    route: str
    event_type: str
    incident_id: int | None
    status: str = Field(description="pending, sent, failed (for good) or muted (quiet hours).")
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    receipt: str | None
    events: list[dict[str, Any]] = Field(description="The events it carries (a group: several).")


class MessagesPublic(BaseModel):
    data: list[MessagePublic]
    count: int
    limit: int
    offset: int


class ChannelHealthPublic(BaseModel):
    channel: str
    type: str | None = Field(description="From the notifications file; null: no longer in it.")
    counts: dict[str, int] = Field(description="Messages by status.")
    failing: bool = Field(description="Its latest finished message failed for good.")
    last_error: str | None


class ApprovalLinkPublic(BaseModel):
    """What a signed approval link shows before anyone signs in."""

    decision: DecisionPublic
    link_plan_digest: str = Field(description="The plan the message showed; approving approves it.")
    plan_changed: bool = Field(description="The decision was planned again since the message.")
    expires_at: datetime
    used: bool


class LinkReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approve: bool = Field(True, description="false rejects.")
    comment: StoredText = Field(
        ..., min_length=1, max_length=2000, description="Why (required).", json_schema_extra=_WORDS
    )


class MatcherModel(BaseModel):
    """An Alertmanager matcher: `name` = `value` (regex with is_regex; negated with is_equal
    false)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=255, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    value: StoredText = Field(..., max_length=1000)
    is_regex: bool = False
    is_equal: bool = True


class SilenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    minutes: float = Field(60, gt=0, le=7 * 24 * 60, description="How long, from now.")
    comment: StoredText = Field(
        ..., min_length=1, max_length=1000, description="Why (required).", json_schema_extra=_WORDS
    )
    matchers: list[MatcherModel] | None = Field(
        None,
        min_length=1,
        description="None: the incident's labels, each matched exactly (what its alerts share).",
    )


class SilencePublic(BaseModel):
    silence_id: str
    state: str = Field(description="active, pending or expired (Alertmanager's).")
    matchers: list[MatcherModel]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    incident_id: int | None = Field(description="The incident it was made for, if made here.")


class MaintenanceRequest(BaseModel):
    """A one-off window (`ends_at` or `duration_minutes` from `starts_at`) or a recurring one
    (`recurrence`, a cron expression in UTC for each opening, each `duration_minutes` long)."""

    model_config = ConfigDict(extra="forbid")
    name: StoredText = Field(..., min_length=1, max_length=200, json_schema_extra=_WORDS)
    service: StoredText | None = Field(None, max_length=255, description="None: every service.")
    namespace: StoredText | None = Field(None, max_length=255, description="None: every namespace.")
    starts_at: StoredTime | None = Field(None, description="None: now.")
    ends_at: StoredTime | None = None
    duration_minutes: float | None = Field(None, gt=0, le=30 * 24 * 60)
    recurrence: StoredText | None = Field(
        None, max_length=100, description="Cron (UTC), e.g. 0 2 * * sun"
    )
    mute_paging: bool = Field(True, description="Its incidents page nobody (they are recorded).")
    automation: Literal["off", "dry_run", "approval"] | None = Field(
        "approval", description="Policies for its incidents run at most in this mode; null: as is."
    )
    reason: StoredText = Field(
        ..., min_length=1, max_length=2000, description="Why (required).", json_schema_extra=_WORDS
    )


class MaintenancePublic(_FromRow):
    window_id: int
    name: str
    service: str | None
    namespace: str | None
    starts_at: datetime
    ends_at: datetime | None
    recurrence: str | None
    duration_minutes: float | None
    mute_paging: bool
    automation: str | None
    reason: str
    source: str = Field(description="api, or deploy (opened by a CI deploy event).")
    created_by: str
    created_at: datetime
    cancelled_at: datetime | None
    cancelled_by: str | None
    open_now: bool = False


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: StoredText = Field(
        ..., min_length=1, max_length=2000, description="Why (required).", json_schema_extra=_WORDS
    )


class DeployEvent(BaseModel):
    """What a CI pipeline posts when it deploys: a window opens for the service."""

    model_config = ConfigDict(extra="forbid")
    service: StoredText = Field(..., min_length=1, max_length=255)
    namespace: StoredText | None = Field(None, max_length=255)
    version: StoredText = Field("", max_length=200)
    minutes: float = Field(30, gt=0, le=24 * 60, description="How long the window stays open.")
    automation: Literal["off", "dry_run", "approval"] | None = "approval"
    mute_paging: bool = True
    url: StoredText | None = Field(
        None, max_length=2000, description="The pipeline run, for the record."
    )
