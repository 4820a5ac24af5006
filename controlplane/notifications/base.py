"""The notification channel contract, and the HTTP delivery every web channel shares.

A channel turns a batch of events (one, or a group collected over a route's window) into what
its service expects and sends it. `send` raises `TemporaryError` for what may work later
(unreachable, 5xx, 429: the outbox retries with backoff) and `PermanentError` for what never
will (any other 4xx, a template that cannot render: the message is marked failed and the
channel reported on /metrics). It returns a short receipt for the audit log.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from controlplane.domain.errors import PermanentError, TemporaryError
from controlplane.notifications.events import Event

#: Sent with every HTTP delivery: the same message always carries the same key, so a
#: receiver (or a reader of its logs) can tell a retry from a second message.
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "aiops-controlplane-notifier"


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: int = Field(..., ge=1, description="At most this many messages ...")
    per_seconds: float = Field(60, gt=0, description="... in this many seconds; later wait.")


class ChannelParams(BaseModel):
    """What every channel accepts besides its own parameters (`type` picks the channel)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    rate_limit: RateLimit | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=120)


P = TypeVar("P", bound=ChannelParams)


class Channel(ABC, Generic[P]):
    """A notification channel; `name` is its `type` in the notifications file."""

    name: ClassVar[str]
    Params: ClassVar[type[ChannelParams]]
    #: True when the service takes one request per event (a group is sent event by event).
    per_event: ClassVar[bool] = False

    def __init__(self, params: P) -> None:
        self.params = params

    @abstractmethod
    def send(self, events: Sequence[Event], *, key: str) -> str:
        """Deliver `events` (one message, or one per event where the service wants that)."""


def post(
    url: str,
    *,
    where: str,
    timeout: float,
    key: str,
    json: Any = None,
    content: bytes | str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST and sort the answer: a 2xx is returned, the rest raised as temporary or permanent."""
    sent = {"User-Agent": USER_AGENT, IDEMPOTENCY_HEADER: key, **(headers or {})}
    try:
        response = httpx.post(url, json=json, content=content, headers=sent, timeout=timeout)
    except httpx.HTTPError as exc:
        raise TemporaryError(f"{where} unreachable: {exc}") from None
    return checked(response, where)


def checked(response: httpx.Response, where: str) -> httpx.Response:
    code = response.status_code
    if code >= 500 or code in (408, 429):
        raise TemporaryError(f"{where} answered {code}: {response.text[:200]}")
    if code >= 400:
        raise PermanentError(f"{where} refused the message: {code} {response.text[:200]}")
    return response


def headline(events: Sequence[Event]) -> str:
    """The first line of a message: the event's summary, or a count for a group."""
    if len(events) == 1:
        return events[0].summary
    kinds = sorted({e.type.value for e in events})
    return f"{len(events)} events ({', '.join(kinds)}): {events[0].summary} and more"


def facts(event: Event) -> list[tuple[str, str]]:
    """Name/value pairs shown under the headline (Slack fields, Teams facts, email rows)."""
    pairs = [("Event", event.type.value), ("Severity", event.severity)]
    if event.incident:
        pairs += [("Incident", f"#{event.incident.id} ({event.incident.status})")]
        if event.incident.service:
            pairs.append(("Service", event.incident.service))
    if event.decision:
        d = event.decision
        pairs += [("Action", f"{d.action} {d.target}"), ("Decision", f"{d.status}: {d.reason}")]
    return [(name, value[:500]) for name, value in pairs]
