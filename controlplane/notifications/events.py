"""Lifecycle events: what happened, in the words a person (or another tool) is told.

Every event comes from one audit row (`from_audit`), so the audit log is the one source of
what happened; escalations are the one kind the notifier makes itself. An event is a plain,
JSON-able value: the outbox stores it and every channel renders it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    INCIDENT_OPENED = "incident.opened"
    INCIDENT_ACKNOWLEDGED = "incident.acknowledged"
    INCIDENT_RESOLVED = "incident.resolved"
    DECISION_MADE = "decision.made"
    APPROVAL_WAITING = "approval.waiting"
    APPROVAL_ESCALATED = "approval.escalated"
    DECISION_APPROVED = "decision.approved"
    DECISION_REJECTED = "decision.rejected"
    ACTION_EXECUTED = "action.executed"
    ACTION_VERIFIED = "action.verified"
    ACTION_FAILED = "action.failed"
    ACTION_ROLLED_BACK = "action.rolled_back"
    AUTOMATION_PAUSED = "automation.paused"
    AUTOMATION_RESUMED = "automation.resumed"


#: Audit actions that are events as they are.
_SAME = {
    "incident.opened",
    "incident.acknowledged",
    "incident.resolved",
    "decision.approved",
    "decision.rejected",
    "automation.paused",
    "automation.resumed",
}
#: Audit actions of an execution's end, and the event each is.
_FINISHED = {
    "action.execute": EventType.ACTION_EXECUTED,
    "action.succeeded": EventType.ACTION_VERIFIED,
    "action.rolled_back": EventType.ACTION_ROLLED_BACK,
    "action.failed": EventType.ACTION_FAILED,
    "action.needs_attention": EventType.ACTION_FAILED,
}


def event_type(action: str, details: dict[str, Any]) -> EventType | None:
    """The event an audit row is, or None when people are not told about it."""
    if action in _SAME:
        return EventType(action)
    if action in ("policy.decided", "policy.replanned"):
        waiting = details.get("status") == "pending_approval"
        return EventType.APPROVAL_WAITING if waiting else EventType.DECISION_MADE
    if action == "action.execute" and not details.get("ok", False):
        return None  # a failed execution is told by its action.failed row
    return _FINISHED.get(action)


@dataclass(frozen=True)
class Incident:
    id: int
    title: str
    severity: str
    status: str
    service: str | None
    labels: dict[str, str]
    opened_at: str
    source: str = "alertmanager"


@dataclass(frozen=True)
class Decision:
    id: int
    policy: str
    action: str
    target: str
    status: str
    reason: str
    mode: str
    diff: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Event:
    """One thing that happened. `id` is unique per event (the audit row's), so a channel
    can deduplicate on it; `links` are absolute URLs (console, approval, Prometheus, Grafana)."""

    id: str
    type: EventType
    at: str
    actor: str
    summary: str
    incident: Incident | None = None
    decision: Decision | None = None
    links: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return self.incident.severity if self.incident else "info"

    @property
    def service(self) -> str | None:
        return self.incident.service if self.incident else None

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.at)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def retyped(self, kind: EventType) -> Event:
        return replace(self, type=kind)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        incident, decision = data.get("incident"), data.get("decision")
        return cls(
            **{
                **data,
                "type": EventType(data["type"]),
                "incident": Incident(**incident) if incident else None,
                "decision": Decision(**decision) if decision else None,
            }
        )


def summary(kind: EventType, incident: Incident | None, decision: Decision | None) -> str:
    """One line a person reads first (message titles, email subjects, PagerDuty summaries)."""
    what = f"#{incident.id} {incident.title}" if incident else "automation"
    if decision is None:
        words = {
            EventType.INCIDENT_OPENED: "Incident opened",
            EventType.INCIDENT_ACKNOWLEDGED: "Incident acknowledged",
            EventType.INCIDENT_RESOLVED: "Incident resolved",
            EventType.AUTOMATION_PAUSED: "Automation paused",
            EventType.AUTOMATION_RESUMED: "Automation resumed",
        }
        return f"{words.get(kind, kind.value)}: {what}"
    doing = f"{decision.policy} ({decision.action} {decision.target})"
    words = {
        EventType.DECISION_MADE: f"Decided {decision.status}",
        EventType.APPROVAL_WAITING: "Approval waiting",
        EventType.APPROVAL_ESCALATED: "Approval still waiting (escalated)",
        EventType.DECISION_APPROVED: "Approved",
        EventType.DECISION_REJECTED: "Rejected",
        EventType.ACTION_EXECUTED: "Executed",
        EventType.ACTION_VERIFIED: "Verified",
        EventType.ACTION_FAILED: "Failed",
        EventType.ACTION_ROLLED_BACK: "Rolled back",
    }
    return f"{words.get(kind, kind.value)}: {doing} for {what}"
