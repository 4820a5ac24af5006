"""The one `Settings` object: the only module that reads the environment or a config file.

Sources, highest priority first: keyword arguments, environment variables (`AIOPS_` prefix,
`__` between section and field, e.g. `AIOPS_DATABASE__URL`), a YAML file given with
`--config`, then the defaults below. Unknown keys and bad values fail at start-up with a
`ConfigError` naming the key, the environment variable and the value.
"""

from __future__ import annotations

import os
import re
import string
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from controlplane.domain.errors import ConfigError

ENV_PREFIX = "AIOPS_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    url: str = Field(
        "sqlite:///aiops.db",
        description="SQLAlchemy URL. SQLite (embedded default) or postgresql+psycopg://...",
    )
    migrate_on_start: bool = Field(True, description="Run Alembic upgrade when the API starts.")
    pool_size: int = Field(10, ge=1, le=200, description="PostgreSQL connection pool size.")
    echo: bool = Field(False, description="Log every SQL statement (debugging only).")

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if not url.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql+psycopg:// URL")
        return url


class ApiSettings(_Section):
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port the API listens on.")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest accepted request body (webhooks, OTLP)."
    )
    retry_after_seconds: int = Field(
        5, ge=1, description="Retry-After sent with 503 when the store is unavailable."
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="Time a client has to send a whole request head."
    )
    body_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="Longest wait for the next chunk of a request body."
    )
    max_connections: int = Field(
        1000, ge=1, description="Connections served at once; beyond that the answer is 503."
    )
    run_loops: bool = Field(
        True,
        description="Run detection, the policy runner and capacity reports in the API process "
        "(false: the API only; run `aiops worker` for the loops).",
    )
    request_deadline_seconds: float = Field(
        5.0,
        gt=0,
        le=120,
        description="Longest a webhook or OTLP delivery waits for the store before it is "
        "answered 503 + Retry-After (the sender retries; a late commit is deduplicated).",
    )


class AuthSettings(_Section):
    webhook_token: SecretStr | None = Field(
        None,
        description="Bearer token Alertmanager sends (http_config.authorization). It may only "
        "deliver notifications. Tokens made with `aiops token create --role webhook` work too.",
    )


class IncidentSettings(_Section):
    group_by: str = Field(
        "alertmanager_group",
        description="How alerts are grouped into one open incident: 'alertmanager_group' "
        "(Alertmanager's groupKey) or the name of a label such as 'service'.",
    )

    flap_seconds: float = Field(
        600,
        ge=0,
        le=86_400,
        description="A group that fires again this soon after its incident resolved reopens that "
        "incident as flapping (no new incident, no new page); its resolution is told only once "
        "it held this long. 0: off.",
    )

    @field_validator("group_by")
    @classmethod
    def _label_name(cls, value: str) -> str:
        if not value.replace("_", "a").isalnum() or value[0].isdigit():
            raise ValueError(f"must be 'alertmanager_group' or a label name, got {value!r}")
        return value


class ConsoleSettings(_Section):
    host: str = Field("127.0.0.1", description="Address the Streamlit console listens on.")
    port: int = Field(8501, ge=1, le=65535, description="Port of the Streamlit console.")
    api_url: str = Field(
        "", description="API base URL the console calls; empty means http://{api.host}:{api.port}."
    )
    session_hours: float = Field(
        12.0,
        gt=0,
        le=24 * 7,
        description="How long a console sign-in lasts across browser reloads (one on-call shift).",
    )


class PrometheusSettings(_Section):
    url: str = Field("", description="Prometheus base URL, e.g. http://127.0.0.1:9090; empty: off.")
    bearer_token: SecretStr | None = Field(None, description="Sent as Authorization: Bearer.")
    username: str | None = Field(None, description="Basic-auth user (with password).")
    password: SecretStr | None = Field(None, description="Basic-auth password.")
    verify_tls: bool = Field(True, description="Verify the server certificate.")
    ca_file: Path | None = Field(None, description="CA bundle for a private certificate authority.")
    timeout_seconds: float = Field(10.0, gt=0, le=300, description="Per-request timeout.")
    max_points: int = Field(
        11_000, ge=100, le=11_000, description="Points per series per range query (chunked)."
    )


class _Watched(_Section):
    """How a signal's series is judged: the detector, its parameters, the resolution."""

    detector: str = Field("ensemble", description="Detector name (detectors.REGISTRY).")
    params: dict[str, Any] = Field(default_factory=dict, description="Detector parameters.")
    step_seconds: int = Field(60, ge=1, le=86_400, description="Resolution of the series.")
    source: Literal["detector", "security"] = Field(
        "detector",
        description="security: a security-relevant series (401/403/429 per client or route, "
        "requests per source): its incidents are of source security, routed and guarded "
        "like the span-based ones (no policy acts unless its match.source names security).",
    )

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, value: str) -> str:
        import detectors

        if value not in detectors.REGISTRY:
            raise ValueError(f"must be one of {sorted(detectors.REGISTRY)}, got {value!r}")
        return value


class SignalSettings(_Watched):
    """One signal: a PromQL query (or a trace RED series) watched by a detector."""

    name: str = Field(..., min_length=1, max_length=200, description="Unique signal name.")
    service: str = Field(..., min_length=1, description="Service the signal belongs to.")
    query: str = Field(
        ...,
        min_length=1,
        description="PromQL returning one series, or 'traces:<service>:<metric>' for a RED "
        "series from spans (metric: rate, error_ratio, p50, p95, p99).",
    )


class SignalFamilySettings(_Watched):
    """Many signals from one PromQL query: every series it returns is a signal, named from its
    labels. One range query a cycle fetches them all (a query per signal does not scale to a
    fleet); the workers share the series like any signals."""

    name: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="Signal name template over the series' labels, e.g. '{service}-latency'.",
    )
    service: str = Field("{service}", min_length=1, description="Service template, likewise.")
    query: str = Field(..., min_length=1, description="PromQL returning one series per signal.")

    @field_validator("name", "service")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            raise ValueError(
                f"must be a template like '{{service}}-load', got {value!r}: {exc}"
            ) from None
        if any(not f.isidentifier() for f in fields):
            raise ValueError(f"placeholders must be label names, got {value!r}")
        return value

    def member(self, labels: dict[str, str]) -> SignalSettings:
        """The signal of the series with these labels; KeyError names a missing label."""
        selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        return SignalSettings(
            name=self.name.format(**labels)[:200],
            service=self.service.format(**labels),
            query=f"{self.query} # {{{selector}}}",  # a PromQL comment: which series it is
            detector=self.detector,
            params=self.params,
            step_seconds=self.step_seconds,
            source=self.source,
        )


class DetectionSettings(_Section):
    interval_seconds: float = Field(60.0, gt=0, description="How often every signal is run.")
    history_seconds: int = Field(
        3 * 86_400, ge=60, description="History read to warm a detector up (first run)."
    )
    threshold: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Score at or above which a point is anomalous (0.9: rarer than almost "
        "everything in the series' memory).",
    )
    sustain_points: int = Field(
        3, ge=1, description="Anomalous points in a row before an incident opens."
    )
    quiet_seconds: int = Field(
        900, ge=0, description="No anomalous point for this long resolves the incident."
    )
    evidence_points: int = Field(
        120, ge=10, le=5000, description="Values and scores kept as an incident's evidence."
    )
    signals: list[SignalSettings] = Field(default_factory=list, description="Watched signals.")
    families: list[SignalFamilySettings] = Field(
        default_factory=list, description="Queries whose every series is a watched signal."
    )
    state_dir: Path | None = Field(
        Path("aiops-detector-state"),
        description="Where the ensemble signals' detector state is saved, so that a restart "
        "resumes instead of warming up again (none: not saved).",
    )
    snapshot_seconds: float = Field(
        300.0, ge=0, description="Least time between two saves of the detector state."
    )

    @field_validator("signals")
    @classmethod
    def _unique_names(cls, signals: list[SignalSettings]) -> list[SignalSettings]:
        return _unique(signals)


_Named = TypeVar("_Named", SignalSettings, "CapacitySignalSettings")


def _unique(signals: list[_Named]) -> list[_Named]:
    counts = Counter(s.name for s in signals)
    duplicates = sorted(n for n, count in counts.items() if count > 1)
    if duplicates:
        raise ValueError(f"signal names must be unique, got {duplicates[0]!r} twice")
    return signals


class ReplicaSettings(_Section):
    """How a load signal maps to replicas (for the replica recommendation)."""

    capacity_per_replica: float = Field(..., gt=0, description="Load one replica can serve.")
    target_utilization: float = Field(0.7, gt=0, le=1, description="Planned load / capacity.")
    current: int = Field(..., ge=0, description="Replicas running now.")
    min: int = Field(1, ge=0, description="Never recommend fewer.")
    max: int = Field(100, ge=1, description="Never recommend more.")
    plan_for: Literal["mean", "hi-80", "hi-95"] = Field(
        "hi-80", description="Which forecast line the peak is taken from."
    )
    workload: str | None = Field(
        None,
        pattern=r"^[a-z0-9-]+/[a-z0-9.-]+$",
        description="'namespace/name': priced at cost.replica_hour of it when set there.",
    )
    cpu_cores: float = Field(0, ge=0, description="What one replica requests (for its price).")
    memory_gib: float = Field(0, ge=0, description="What one replica requests (for its price).")

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaSettings:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class CapacitySignalSettings(_Section):
    """One resource signal to forecast against its limit (CPU, memory, requests, disk)."""

    name: str = Field(..., min_length=1, max_length=200, description="Unique signal name.")
    service: str = Field(..., min_length=1, description="Service the resource belongs to.")
    resource: Literal["cpu", "memory", "requests", "disk", "other"] = Field(
        "other", description="What the signal measures (shown in reports)."
    )
    query: str = Field(..., min_length=1, description="PromQL returning one series.")
    limit: float | None = Field(None, description="The capacity limit, in the query's unit.")
    limit_query: str | None = Field(
        None, description="PromQL whose latest value is the limit (instead of `limit`)."
    )
    unit: str = Field("", description="Unit shown in reports, e.g. 'cores', 'GiB', 'req/s'.")
    model: str = Field("auto", description="Forecaster name (forecasters.REGISTRY).")
    model_params: dict[str, Any] = Field(
        default_factory=dict,
        description="The forecaster's parameters, e.g. auto's `candidates` (names or "
        "{model: name, ...}), `top` or `guard`.",
    )
    replicas: ReplicaSettings | None = Field(
        None, description="Recommend replicas for this load signal."
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        import forecasters

        if value not in forecasters.REGISTRY:
            raise ValueError(f"must be one of {sorted(forecasters.REGISTRY)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _known_params(self) -> CapacitySignalSettings:
        import forecasters
        from controlplane.domain.errors import InvalidInputError

        try:
            forecasters.make(self.model, **self.model_params)
        except InvalidInputError as exc:
            raise ValueError(f"model_params: {exc}") from None
        return self

    @model_validator(mode="after")
    def _one_limit(self) -> CapacitySignalSettings:
        if (self.limit is None) == (self.limit_query is None):
            raise ValueError("set exactly one of 'limit' and 'limit_query'")
        return self


def _cron(value: str) -> str:
    if value:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
    return value


#: A cron expression (UTC), or empty for none.
Cron = Annotated[str, AfterValidator(_cron)]


class CapacitySettings(_Section):
    schedule: Cron = Field(
        "", description="Cron expression (UTC) for scheduled reports, e.g. '0 6 * * *'; empty: off."
    )
    history_seconds: int = Field(30 * 86_400, ge=3600, description="History each forecast reads.")
    horizon_seconds: int = Field(7 * 86_400, ge=60, description="How far ahead to forecast.")
    step_seconds: int = Field(3600, ge=1, le=86_400, description="Resolution of the series.")
    lead_seconds: int = Field(
        3 * 86_400, ge=60, description="A crossing expected within this opens an incident."
    )
    min_probability: float = Field(
        0.2, gt=0, le=1, description="Crossing probability within the lead that opens one."
    )
    keep_reports: int = Field(500, ge=1, description="Reports kept in the store (oldest go).")
    signals: list[CapacitySignalSettings] = Field(
        default_factory=list, description="Forecast signals."
    )

    @field_validator("signals")
    @classmethod
    def _unique_names(cls, signals: list[CapacitySignalSettings]) -> list[CapacitySignalSettings]:
        return _unique(signals)


class NoiseSettings(_Section):
    """The weekly noise report (`GET /api/v1/reports/noise` on a schedule, kept like the
    capacity reports)."""

    schedule: Cron = Field(
        "", description="Cron expression (UTC), e.g. '0 7 * * 1' (Mondays 07:00); empty: off."
    )
    days: int = Field(7, ge=1, le=366, description="Each report covers the days before its run.")
    keep_reports: int = Field(104, ge=1, description="Reports kept in the store (oldest go).")


def _kubeconfig_from_environment() -> Path | None:
    """$KUBECONFIG (its first file), as kubectl reads it."""
    value = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(value) if value else None


class KubernetesSettings(_Section):
    """The cluster remediations act on. Nothing set: the kubeconfig ($KUBECONFIG or
    ~/.kube/config) if there is one; otherwise plans fail with a clear reason."""

    host: str | None = Field(None, description="API server URL, e.g. https://127.0.0.1:6443.")
    token: SecretStr | None = Field(None, description="Bearer token for `host`.")
    kubeconfig: Path | None = Field(
        default_factory=_kubeconfig_from_environment,
        description="Kubeconfig file (instead of `host`); default $KUBECONFIG.",
    )
    context: str | None = Field(None, description="Kubeconfig context.")
    verify_tls: bool = Field(True, description="Verify the API server certificate.")
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="Per-request timeout.")


class AutomationSettings(_Section):
    enabled: bool = Field(
        True, description="Evaluate the policies of `policies_dir` on new and changed incidents."
    )
    policies_dir: Path | None = Field(
        None,
        description="Folder of policy YAML files; none: no policies (the demo uses the "
        "example policies shipped in runbooks/policies).",
    )
    dry_run_only: bool = Field(
        False, description="Evaluate every policy as dry_run (staging, or a first look)."
    )
    interval_seconds: float = Field(
        0.5, gt=0, le=300, description="How often new incidents and approvals are looked for."
    )
    max_actions_per_hour: int = Field(
        10, ge=0, description="All policies together (each policy has its own limit too)."
    )
    lease_seconds: int = Field(
        900, ge=30, description="An execution not finished by then goes to a human."
    )
    kubernetes: KubernetesSettings = KubernetesSettings()


class SecuritySettings(_Section):
    """Security detection over the access records of server spans (see
    controlplane/detection/security.py). The thresholds are chosen, not fitted: see
    docs/ARCHITECTURE.md for where each comes from."""

    enabled: bool = Field(False, description="Scan the access records every interval.")
    interval_seconds: float = Field(60, gt=0, le=3600)
    window_minutes: int = Field(60, ge=5, le=24 * 60, description="What each scan reads.")
    burst_denied_per_minute: int = Field(
        20, ge=1, description="401/403 from one client in a minute: credential stuffing."
    )
    slow_denied: int = Field(
        30, ge=1, description="401/403 from one client over the window: a slow brute force."
    )
    throttled_per_minute: int = Field(
        50, ge=1, description="429 to one client in a minute: it ignores rate limits."
    )
    scraper_min_requests: int = Field(
        600, ge=1, description="Requests over the window before a client can be a scraper."
    )
    scraper_factor: float = Field(
        10, gt=1, description="... and this many times the median client's requests ..."
    )
    scraper_min_routes: int = Field(50, ge=1, description="... over this many distinct routes.")
    auth_routes: str = Field(
        r"(?i)(log-?in|sign-?in|auth|token|session|password)",
        description="Regular expression matching the authentication routes.",
    )
    auth_min_requests: int = Field(
        30, ge=1, description="Requests to an auth route in a minute before its ratio counts."
    )
    auth_denied_ratio: float = Field(
        0.5, gt=0, le=1, description="Refused share of them in that minute ..."
    )
    auth_min_clients: int = Field(
        10, ge=2, description="... from at least this many clients: a distributed attack."
    )
    baseline_days: int = Field(
        7, ge=1, le=90, description="History before the window that tells routes a service has."
    )
    new_routes_per_client: int = Field(
        10, ge=1, description="Routes a service never served before, from one client: probing."
    )
    keep_days: int = Field(
        14, ge=1, le=365, description="Access records older than this are deleted by the scan."
    )

    @field_validator("auth_routes")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _baseline_kept(self) -> SecuritySettings:
        if self.keep_days < self.baseline_days + 1:
            raise ValueError(
                f"keep_days ({self.keep_days}) must exceed baseline_days ({self.baseline_days})"
            )
        return self


class BudgetSettings(_Section):
    """A cap on what automated scaling may add to a scope's spend (per namespace and/or
    workload; neither: everything)."""

    name: str = Field(..., min_length=1, max_length=100)
    namespace: str | None = None
    workload: str | None = Field(None, description="A Deployment or StatefulSet name.")
    per_hour: float | None = Field(None, ge=0, description="At most this added per hour.")
    per_month: float | None = Field(
        None, ge=0, description="At most this added until the month ends (UTC)."
    )
    over: Literal["refuse", "approval"] = Field(
        "refuse", description="Past the cap: refuse, or ask a person to approve."
    )

    @model_validator(mode="after")
    def _a_cap(self) -> BudgetSettings:
        if self.per_hour is None and self.per_month is None:
            raise ValueError("give per_hour, per_month or both")
        return self

    def covers(self, namespace: str | None, workload: str) -> bool:
        if self.namespace is not None and self.namespace != namespace:
            return False
        return self.workload is None or self.workload == workload


class CostSettings(_Section):
    """What capacity costs: a price per replica-hour per workload, else the pod template's
    requests priced per CPU-core-hour and GiB-hour."""

    currency: str = Field("USD", min_length=1, max_length=8)
    cpu_core_hour: float = Field(0.0, ge=0, description="Price of one requested core for an hour.")
    memory_gib_hour: float = Field(
        0.0, ge=0, description="Price of one requested GiB of memory for an hour."
    )
    replica_hour: dict[str, float] = Field(
        default_factory=dict,
        description="Price of one replica-hour per workload, keyed 'namespace/name'.",
    )
    budgets: list[BudgetSettings] = Field(default_factory=list)
    opencost_url: str = Field(
        "",
        description="An OpenCost-compatible API (e.g. http://opencost.opencost:9003): its "
        "prices per core-hour and GiB-hour replace cpu_core_hour and memory_gib_hour.",
    )
    opencost_window: str = Field(
        "7d", pattern=r"^[0-9]+[mhd]$", description="The window its prices average over."
    )
    opencost_refresh_seconds: float = Field(3600, ge=60, description="How often they are read.")

    def replica_price(
        self, workload: str | None, cpu_cores: float, memory_gib: float
    ) -> float | None:
        """One replica-hour: the workload's own price, else its requests priced; None when
        nothing prices it."""
        if workload is not None and workload in self.replica_hour:
            return self.replica_hour[workload]
        price = cpu_cores * self.cpu_core_hour + memory_gib * self.memory_gib_hour
        return price if price > 0 else None


class SloSettings(_Section):
    """A service level objective. A ratio SLI gives `good` and `total` (or `bad` and `total`)
    event rates; a threshold SLI gives a `query` that is good while `op value` holds. Queries
    carry `{{.window}}` where the window goes (Sloth's convention), e.g.
    `sum(rate(http_requests_total{service="checkout",code!~"5.."}[{{.window}}]))`."""

    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    service: str = Field(..., min_length=1)
    description: str = ""
    objective: float = Field(..., gt=0, lt=1, description="e.g. 0.999 (99.9%).")
    window_days: int = Field(28, ge=1, le=90, description="The error budget's window.")
    calendar: bool = Field(False, description="A calendar month, not a rolling window.")
    good: str | None = None
    bad: str | None = None
    total: str | None = None
    query: str | None = None
    op: Literal["lt", "lte", "gt", "gte"] = "lt"
    value: float | None = None

    @model_validator(mode="after")
    def _one_indicator(self) -> SloSettings:
        ratio = self.total is not None and (self.good is None) != (self.bad is None)
        threshold = self.query is not None and self.value is not None
        if ratio == threshold:
            raise ValueError(
                "give a ratio (total with good or bad) or a threshold (query and value)"
            )
        for text in (self.good, self.bad, self.total):
            if text is not None and "{{.window}}" not in text:
                raise ValueError(f"a ratio query needs {{{{.window}}}} for its range, got {text!r}")
        return self


class NotificationSettings(_Section):
    """Who is told what (see README 'Notifications' and controlplane/notifications)."""

    file: Path | None = Field(
        None, description="Notifications file (channels and routes); none: nobody is told."
    )
    interval_seconds: float = Field(
        2.0, gt=0, le=300, description="How often new events are routed and messages sent."
    )
    max_attempts: int = Field(
        8, ge=1, le=50, description="Sends of one message (backoff 5 s doubling, at most 15 min)."
    )
    link_secret: SecretStr | None = Field(
        None,
        description="Signs one-click approval links (at least 32 characters); none: messages "
        "link to the approval page without a signed link.",
    )
    link_ttl_minutes: float = Field(
        60, gt=0, le=7 * 24 * 60, description="How long an approval link stays valid."
    )

    @field_validator("link_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value


class LinkSettings(_Section):
    """Where links in messages, incidents and decisions point (addresses people can open)."""

    console_url: str = Field(
        "", description="The console as people reach it; empty: http://{console.host}:{port}."
    )
    prometheus_url: str = Field("", description="Prometheus for people; empty: prometheus.url.")
    grafana_url: str = Field("", description="Grafana base URL; empty: no Explore links.")
    grafana_datasource: str = Field(
        "prometheus", description="UID of the Prometheus data source in Grafana."
    )


class AlertmanagerSettings(_Section):
    url: str = Field(
        "", description="Alertmanager for silences, e.g. http://127.0.0.1:9093; empty: off."
    )
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="Per-request timeout.")


class CoordinationSettings(_Section):
    """How processes running loops share work through the store (see docs/operations.md)."""

    heartbeat_seconds: float = Field(
        5.0, gt=0, le=60, description="How often a process running loops says it is alive."
    )
    member_ttl_seconds: float = Field(
        20.0,
        gt=0,
        le=600,
        description="A process silent this long is dead: its signals move to the others.",
    )
    lease_seconds: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="Lease on singleton work (policy decisions, scheduled reports); a holder "
        "paused or cut off this long loses it to another process.",
    )

    @model_validator(mode="after")
    def _beats_before_death(self) -> CoordinationSettings:
        if self.member_ttl_seconds < 2 * self.heartbeat_seconds:
            raise ValueError(
                "member_ttl_seconds must be at least twice heartbeat_seconds, got "
                f"{self.member_ttl_seconds:g} and {self.heartbeat_seconds:g}"
            )
        return self


class DaskSettings(_Section):
    address: str | None = Field(
        None,
        description="Dask scheduler (tcp://host:8786) for detection and forecasting batches; "
        "none: in-process detection and a process pool for forecasts.",
    )
    batch_size: int = Field(500, ge=1, description="Signals per Dask task.")


class Settings(BaseSettings):
    """Everything the control plane can be told. See README 'Configuration'."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    incidents: IncidentSettings = IncidentSettings()
    console: ConsoleSettings = ConsoleSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    detection: DetectionSettings = DetectionSettings()
    dask: DaskSettings = DaskSettings()
    capacity: CapacitySettings = CapacitySettings()
    noise: NoiseSettings = NoiseSettings()
    automation: AutomationSettings = AutomationSettings()
    coordination: CoordinationSettings = CoordinationSettings()
    notifications: NotificationSettings = NotificationSettings()
    slos: list[SloSettings] = Field(default_factory=list, description="Service level objectives.")
    cost: CostSettings = CostSettings()
    security: SecuritySettings = SecuritySettings()
    links: LinkSettings = LinkSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()

    @property
    def console_api_url(self) -> str:
        return self.console.api_url or f"http://{self.api.host}:{self.api.port}"

    @property
    def console_url(self) -> str:
        """The console's address as people open it (links in messages)."""
        url = self.links.console_url or f"http://{self.console.host}:{self.console.port}"
        return url.rstrip("/")


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings: defaults < YAML file < environment < keyword overrides.

    Raises ConfigError naming the file, the key (with its environment variable) and the value.
    """
    file_values = _read_yaml(config_file) if config_file else {}
    env_values = EnvSettingsSource(Settings)()
    merged = _deep_merge(_deep_merge(file_values, env_values), overrides)
    try:
        # model_validate skips BaseSettings.__init__, so the sources are exactly the ones above.
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_file)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping at the top, got {type(loaded).__name__}"
        )
    return loaded


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_SECRET_WORDS = ("token", "password", "secret", "credential")


def _shown(path: list[str], value: object) -> str:
    """The bad value as it may be printed: secrets hidden, URL passwords masked."""
    if path[0] == "auth" or any(word in part for part in path for word in _SECRET_WORDS):
        return "<hidden>"
    if isinstance(value, str) and "://" in value and "@" in value:
        scheme, _, rest = value.partition("://")
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return repr(f"{scheme}://{user}:***@{host}" if ":" in credentials else value)
    return repr(value)


def _describe(exc: ValidationError, config_file: Path | None) -> str:
    where = f" (config file {str(config_file)!r} or environment)" if config_file else ""
    lines = [f"invalid settings{where}:"]
    for error in exc.errors():
        path = [str(part) for part in error["loc"]]
        key = ".".join(path)
        env = ENV_PREFIX + "__".join(part.upper() for part in path)
        value = _shown(path, error.get("input"))
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {key} ({env}) = {value}: {message}")
    return "\n".join(lines)
