"""Microsoft Teams: an Adaptive Card (schema 1.4) posted to a Workflows (Power Automate)
webhook, the way Teams takes incoming messages since Office 365 connectors retired."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, SecretStr

from controlplane.notifications._links import labelled
from controlplane.notifications.base import Channel, ChannelParams, facts, headline, post
from controlplane.notifications.events import Event

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
_COLOR = {"critical": "Attention", "error": "Attention", "warning": "Warning"}


def card(events: Sequence[Event]) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": headline(events),
            "size": "Large",
            "weight": "Bolder",
            "wrap": True,
            "color": _COLOR.get(events[0].severity, "Default"),
        }
    ]
    actions: list[dict[str, Any]] = []
    for event in events[:10]:
        body.append({"type": "TextBlock", "text": event.summary, "weight": "Bolder", "wrap": True})
        body.append(
            {"type": "FactSet", "facts": [{"title": n, "value": v} for n, v in facts(event)]}
        )
        actions += [
            {"type": "Action.OpenUrl", "title": label, "url": url}
            for _, label, url in labelled(event)
        ]
    return {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "actions": actions[:6],  # Teams shows at most six actions on a card
    }


class TeamsParams(ChannelParams):
    type: Literal["teams"]
    url: SecretStr = Field(..., description="Workflows webhook URL (it is the secret).")


class Teams(Channel[TeamsParams]):
    name = "teams"
    Params = TeamsParams

    def send(self, events: Sequence[Event], *, key: str) -> str:
        body = {
            "type": "message",
            "attachments": [
                {"contentType": CARD_TYPE, "contentUrl": None, "content": card(events)}
            ],
        }
        response = post(
            self.params.url.get_secret_value(),
            where="Teams webhook",
            timeout=self.params.timeout_seconds,
            key=key,
            json=body,
        )
        return f"Teams {response.status_code}"
