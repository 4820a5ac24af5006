"""Grafana annotations: each event becomes an annotation (`POST /api/annotations`) at the
time it happened, tagged so a dashboard shows executed actions over the graphs they moved."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, SecretStr

from controlplane.notifications.base import Channel, ChannelParams, post
from controlplane.notifications.events import Event


def annotation(event: Event, dashboard_uid: str | None, extra_tags: list[str]) -> dict[str, Any]:
    tags = ["aiops", event.type.value, *extra_tags]
    if event.service:
        tags.append(f"service:{event.service}")
    if event.decision:
        tags += [f"policy:{event.decision.policy}", f"action:{event.decision.action}"]
    text = event.summary
    if "console" in event.links:
        text += f' <a href="{event.links["console"]}">open</a>'
    body: dict[str, Any] = {"time": int(event.time.timestamp() * 1000), "tags": tags, "text": text}
    if dashboard_uid:
        body["dashboardUID"] = dashboard_uid
    return body


class GrafanaParams(ChannelParams):
    type: Literal["grafana_annotation"]
    url: str = Field(..., description="Grafana's base URL.")
    token: SecretStr = Field(..., description="Service account token (annotations:write).")
    dashboard_uid: str | None = Field(None, description="None: an organisation annotation.")
    tags: list[str] = Field(default_factory=list, description="Added to every annotation.")


class GrafanaAnnotation(Channel[GrafanaParams]):
    name = "grafana_annotation"
    Params = GrafanaParams
    per_event = True

    def send(self, events: Sequence[Event], *, key: str) -> str:
        ids = []
        for event in events:
            response = post(
                self.params.url.rstrip("/") + "/api/annotations",
                where="Grafana",
                timeout=self.params.timeout_seconds,
                key=f"{key}/{event.id}",
                json=annotation(event, self.params.dashboard_uid, self.params.tags),
                headers={"Authorization": f"Bearer {self.params.token.get_secret_value()}"},
            )
            ids.append(str(response.json().get("id")))
        return f"Grafana annotations {', '.join(ids)}"
