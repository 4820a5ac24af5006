"""Enumerations of the incident domain: severities, statuses, timeline kinds and roles."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """Incident and alert severity, ordered from the most to the least urgent."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is more urgent; used to raise an incident to its worst alert."""
        return _SEVERITY_RANK[self]

    @classmethod
    def from_label(cls, value: str | None) -> Severity:
        """Map the many spellings seen in alert labels onto the four levels.

        An absent or unknown label maps to WARNING: unknown is not the same as harmless.
        """
        if value is None:
            return cls.WARNING
        return _SEVERITY_ALIASES.get(value.strip().lower(), cls.WARNING)


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2, Severity.CRITICAL: 3}
_SEVERITY_ALIASES: dict[str, Severity] = {
    **dict.fromkeys(
        ["critical", "crit", "page", "p1", "fatal", "emergency", "disaster"], Severity.CRITICAL
    ),
    **dict.fromkeys(["error", "err", "high", "major", "p2"], Severity.ERROR),
    **dict.fromkeys(["warning", "warn", "medium", "minor", "p3"], Severity.WARNING),
    **dict.fromkeys(["info", "informational", "low", "none", "p4", "p5"], Severity.INFO),
}


class IncidentStatus(StrEnum):
    """Lifecycle: open -> acknowledged -> resolved (open may go straight to resolved)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class DecisionStatus(StrEnum):
    """A policy decision's lifecycle.

    Decided as `refused`, `dry_run`, `pending_approval` or `approved`; a pending one becomes
    `approved` or `rejected` by an operator, or `stale` when the world moved on before anyone
    approved it (its incident resolved, or its target is no longer in the state the plan was
    made from); an approved one is claimed as `executing` and ends `succeeded`, `failed`,
    `rolled_back`, `cancelled` (paused before it ran), `stale` (the target moved: nothing was
    changed) or `needs_attention` (a human must look). An operator can ask for a stale
    decision of a still open incident to be `replanning`: the policy loop decides it again
    from a fresh read, with every guardrail, and it needs a new approval.
    """

    REFUSED = "refused"
    DRY_RUN = "dry_run"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"
    STALE = "stale"
    REPLANNING = "replanning"
    NEEDS_ATTENTION = "needs_attention"

    @property
    def counts_as_acting(self) -> bool:
        """Counts against rates and cooldowns: cleared to act, waiting for a yes, or ran."""
        return self in _ACTING

    @property
    def executed(self) -> bool:
        """Reached the executor (claimed, whatever came of it)."""
        return self in _EXECUTED


_EXECUTED = frozenset(
    {
        DecisionStatus.EXECUTING,
        DecisionStatus.SUCCEEDED,
        DecisionStatus.FAILED,
        DecisionStatus.ROLLED_BACK,
        DecisionStatus.CANCELLED,
        DecisionStatus.NEEDS_ATTENTION,
    }
)
_ACTING = (_EXECUTED - {DecisionStatus.CANCELLED}) | {
    DecisionStatus.PENDING_APPROVAL,
    DecisionStatus.APPROVED,
}


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class TimelineKind(StrEnum):
    """What happened to an incident; one timeline entry per real change, never per delivery."""

    OPENED = "opened"
    REOPENED = "reopened"  # fired again within the flap window: flapping
    ALERT_ADDED = "alert_added"
    ALERT_RESOLVED = "alert_resolved"
    SEVERITY_RAISED = "severity_raised"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    DECISION = "decision"  # a policy decided (dry run, approval needed, approved, refused)
    ACTION = "action"  # an approval, execution, verification or rollback
    SILENCED = "silenced"  # an Alertmanager silence made for it, or expired
    NOTE = "note"  # a note someone (or an agent) added


class Role(StrEnum):
    """API token roles. `webhook` may only deliver notifications; the others are ordered."""

    WEBHOOK = "webhook"
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, required: Role) -> bool:
        """True when a token of this role may do what `required` is needed for."""
        if self is Role.ADMIN:
            return True
        if Role.WEBHOOK in (self, required):
            return self is required
        return _ROLE_RANK[self] >= _ROLE_RANK[required]


_ROLE_RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name (recorded as the actor of every change) and role."""

    name: str
    role: Role
