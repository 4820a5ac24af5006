"""PagerDuty Events API v2: incidents page (`trigger`, `acknowledge`, `resolve`, keyed by a
`dedup_key` derived from the incident, so PagerDuty keeps one alert per incident), approvals
waiting page until reviewed, and what automation did is posted as change events, which page
nobody but show on the service's timeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, SecretStr

from controlplane.notifications._links import labelled
from controlplane.notifications.base import Channel, ChannelParams, post
from controlplane.notifications.events import Event, EventType

SOURCE = "aiops-controlplane"
_ALERT_ACTIONS = {
    EventType.INCIDENT_OPENED: "trigger",
    EventType.INCIDENT_ACKNOWLEDGED: "acknowledge",
    EventType.INCIDENT_RESOLVED: "resolve",
    EventType.APPROVAL_WAITING: "trigger",
    EventType.APPROVAL_ESCALATED: "trigger",
    EventType.DECISION_APPROVED: "resolve",
    EventType.DECISION_REJECTED: "resolve",
    EventType.AUTOMATION_PAUSED: "trigger",
    EventType.AUTOMATION_RESUMED: "resolve",
}
_CHANGES = {
    EventType.DECISION_MADE,
    EventType.ACTION_EXECUTED,
    EventType.ACTION_VERIFIED,
    EventType.ACTION_FAILED,
    EventType.ACTION_ROLLED_BACK,
}


def dedup_key(event: Event) -> str:
    """One PagerDuty alert per incident, per approval, and one for paused automation."""
    if event.type in (EventType.AUTOMATION_PAUSED, EventType.AUTOMATION_RESUMED):
        return "aiops/automation-paused"
    if event.decision and event.type not in (
        EventType.INCIDENT_OPENED,
        EventType.INCIDENT_ACKNOWLEDGED,
        EventType.INCIDENT_RESOLVED,
    ):
        return f"aiops/approval/{event.decision.id}"
    assert event.incident is not None
    return f"aiops/incident/{event.incident.id}"


def _links(event: Event) -> list[dict[str, str]]:
    return [{"href": url, "text": label} for _, label, url in labelled(event)]


def alert_event(event: Event, routing_key: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": _ALERT_ACTIONS[event.type],
        "dedup_key": dedup_key(event),
        "client": SOURCE,
        "links": _links(event),
    }
    if "console" in event.links:
        body["client_url"] = event.links["console"]
    if body["event_action"] == "trigger":
        body["payload"] = {
            "summary": event.summary[:1024],
            "source": event.service or SOURCE,
            "severity": event.severity,  # critical, error, warning, info: PagerDuty's own set
            "timestamp": event.at,
            "component": event.service,
            "group": event.incident.labels.get("namespace") if event.incident else None,
            "class": event.type.value,
            "custom_details": _details(event),
        }
        body["payload"] = {k: v for k, v in body["payload"].items() if v is not None}
    return body


def change_event(event: Event, routing_key: str) -> dict[str, Any]:
    return {
        "routing_key": routing_key,
        "payload": {
            "summary": event.summary[:1024],
            "timestamp": event.at,
            "source": SOURCE,
            "custom_details": _details(event),
        },
        "links": _links(event),
    }


def _details(event: Event) -> dict[str, Any]:
    details: dict[str, Any] = {"event": event.type.value, "actor": event.actor}
    if event.incident:
        details["incident"] = {"id": event.incident.id, "labels": event.incident.labels}
    if event.decision:
        d = event.decision
        details["decision"] = {"id": d.id, "policy": d.policy, "status": d.status}
        details["reason"] = d.reason
    return details


class PagerDutyParams(ChannelParams):
    type: Literal["pagerduty"]
    routing_key: SecretStr = Field(..., description="Integration key of an Events API v2 service.")
    url: str = Field("https://events.pagerduty.com", description="Events API base URL.")


class PagerDuty(Channel[PagerDutyParams]):
    name = "pagerduty"
    Params = PagerDutyParams
    per_event = True

    def send(self, events: Sequence[Event], *, key: str) -> str:
        base, routing_key = self.params.url.rstrip("/"), self.params.routing_key.get_secret_value()
        receipts = []
        for event in events:  # PagerDuty takes one event per request
            if event.type in _CHANGES:
                path, body = "/v2/change/enqueue", change_event(event, routing_key)
            elif event.type in _ALERT_ACTIONS:
                path, body = "/v2/enqueue", alert_event(event, routing_key)
            else:
                continue
            response = post(
                base + path,
                where="PagerDuty",
                timeout=self.params.timeout_seconds,
                key=f"{key}/{event.id}",
                json=body,
            )
            receipts.append(f"{body.get('event_action', 'change')} {response.status_code}")
        return "PagerDuty " + ", ".join(receipts)
