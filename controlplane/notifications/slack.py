"""Slack: an incoming webhook, or the Web API (`chat.postMessage` through `slack-sdk`), both
with Block Kit messages: a header, the facts of each event and link buttons (the approval
link is the primary button)."""

from __future__ import annotations

import urllib.error
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from controlplane.domain.errors import PermanentError, TemporaryError
from controlplane.notifications._links import labelled
from controlplane.notifications.base import Channel, ChannelParams, facts, headline, post
from controlplane.notifications.events import Event

#: Slack shows at most 50 blocks; a group shows its first events and counts the rest.
MAX_EVENTS = 10


def blocks(events: Sequence[Event]) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(events)[:150]}}
    ]
    for event in events[:MAX_EVENTS]:
        shown.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{event.summary}*"[:3000]},
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}*\n{value}"[:2000]}
                    for name, value in facts(event)[:10]
                ],
            }
        )
        buttons = [
            {
                "type": "button",
                "action_id": f"{key}-{event.id}"[:255],
                "text": {"type": "plain_text", "text": label},
                "url": url,
                **({"style": "primary"} if key == "approve" else {}),
            }
            for key, label, url in labelled(event)
        ]
        if buttons:
            shown.append({"type": "actions", "elements": buttons[:25]})
    if len(events) > MAX_EVENTS:
        more = f"and {len(events) - MAX_EVENTS} more events: see the console"
        shown.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return shown


class SlackWebhookParams(ChannelParams):
    type: Literal["slack_webhook"]
    url: SecretStr = Field(..., description="Incoming webhook URL (it is the secret).")


class SlackWebhook(Channel[SlackWebhookParams]):
    name = "slack_webhook"
    Params = SlackWebhookParams

    def send(self, events: Sequence[Event], *, key: str) -> str:
        body = {"text": headline(events), "blocks": blocks(events)}
        response = post(
            self.params.url.get_secret_value(),
            where="Slack webhook",
            timeout=self.params.timeout_seconds,
            key=key,
            json=body,
        )
        return f"Slack webhook {response.status_code} {response.text[:40]}"


class SlackApiParams(ChannelParams):
    type: Literal["slack_api"]
    token: SecretStr = Field(..., description="Bot token (xoxb-...), chat:write scope.")
    channel: str = Field(..., min_length=1, description="Channel ID or name.")
    base_url: str = Field("https://slack.com/api/", description="Web API base URL.")


class SlackApi(Channel[SlackApiParams]):
    name = "slack_api"
    Params = SlackApiParams

    def send(self, events: Sequence[Event], *, key: str) -> str:
        client = WebClient(
            token=self.params.token.get_secret_value(),
            base_url=self.params.base_url.rstrip("/") + "/",
            timeout=int(self.params.timeout_seconds),
        )
        try:
            answer = client.chat_postMessage(
                channel=self.params.channel,
                text=headline(events),
                blocks=blocks(events),
                unfurl_links=False,
                metadata={"event_type": "aiops_notification", "event_payload": {"key": key}},
            )
        except SlackApiError as exc:
            error, code = exc.response.get("error"), exc.response.status_code
            if code >= 500 or code == 429 or error in ("ratelimited", "service_unavailable"):
                raise TemporaryError(f"Slack API: {error} ({code})") from None
            raise PermanentError(f"Slack API refused the message: {error} ({code})") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TemporaryError(f"Slack API unreachable: {exc}") from None
        return f"Slack API ts={answer.get('ts')} channel={answer.get('channel')}"
