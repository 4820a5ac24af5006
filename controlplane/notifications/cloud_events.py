"""CloudEvents 1.0 over HTTP (the `cloudevents` SDK), in binary mode (attributes in `ce-`
headers, the event as the body) or structured mode (one `application/cloudevents+json`
document). One request per event: `id` is the event's, so a consumer deduplicates on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from cloudevents.core.bindings import http
from cloudevents.core.v1.event import CloudEvent
from pydantic import Field, SecretStr

from controlplane.notifications.base import Channel, ChannelParams, post
from controlplane.notifications.events import Event

TYPE_PREFIX = "io.aiops.controlplane."


def cloud_event(event: Event, source: str) -> CloudEvent:
    subject = (
        f"decision/{event.decision.id}"
        if event.decision
        else f"incident/{event.incident.id}"
        if event.incident
        else "automation"
    )
    return CloudEvent(
        attributes={
            "id": event.id,
            "source": source,
            "type": TYPE_PREFIX + event.type.value,
            "subject": subject,
            "time": event.time,
            "datacontenttype": "application/json",
        },
        data=event.as_dict(),
    )


class CloudEventsParams(ChannelParams):
    type: Literal["cloudevents"]
    url: SecretStr = Field(..., description="Where to POST (a broker, Knative, a sink).")
    mode: Literal["binary", "structured"] = "binary"
    source: str = Field("/aiops-controlplane", description="The events' `source` attribute.")


class CloudEvents(Channel[CloudEventsParams]):
    name = "cloudevents"
    Params = CloudEventsParams
    per_event = True

    def send(self, events: Sequence[Event], *, key: str) -> str:
        convert = http.to_binary_event if self.params.mode == "binary" else http.to_structured_event
        for event in events:
            message = convert(cloud_event(event, self.params.source))
            post(
                self.params.url.get_secret_value(),
                where="CloudEvents sink",
                timeout=self.params.timeout_seconds,
                key=f"{key}/{event.id}",
                content=message.body,
                headers=message.headers,
            )
        return f"{len(events)} CloudEvents ({self.params.mode})"
