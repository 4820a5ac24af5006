"""A generic webhook: the body is the user's Jinja2 template, rendered in Jinja's sandbox
(no attribute access to internals, no imports), or the events as JSON when no template is
given. A template that does not parse is refused when the file loads; one that fails on an
event (an undefined name) fails that message for good, it would fail on every retry."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import Field, SecretStr, field_validator

from controlplane.domain.errors import PermanentError
from controlplane.notifications.base import Channel, ChannelParams, headline, post
from controlplane.notifications.events import Event

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_ENV.filters["tojson"] = lambda value: json.dumps(value, default=str)


class WebhookParams(ChannelParams):
    type: Literal["webhook"]
    url: SecretStr = Field(..., description="Where to POST.")
    template: str | None = Field(
        None,
        description="Jinja2 body; sees `events` (list of dicts), `event` (the first) and "
        '`headline`. None: {"headline": ..., "events": [...]} as JSON.',
    )
    content_type: str = "application/json"
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")

    @field_validator("template")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                _ENV.parse(value)
            except jinja2.TemplateSyntaxError as exc:
                raise ValueError(
                    f"not a valid Jinja2 template: {exc} (line {exc.lineno})"
                ) from None
        return value


class Webhook(Channel[WebhookParams]):
    name = "webhook"
    Params = WebhookParams

    def render(self, events: Sequence[Event]) -> str:
        data = [e.as_dict() for e in events]
        if self.params.template is None:
            return json.dumps({"headline": headline(events), "events": data}, default=str)
        try:
            return _ENV.from_string(self.params.template).render(
                events=data, event=data[0], headline=headline(events)
            )
        except (jinja2.TemplateError, TypeError, ValueError) as exc:
            raise PermanentError(f"webhook template failed: {exc}") from None

    def send(self, events: Sequence[Event], *, key: str) -> str:
        response = post(
            self.params.url.get_secret_value(),
            where="webhook",
            timeout=self.params.timeout_seconds,
            key=key,
            content=self.render(events).encode(),
            headers={"Content-Type": self.params.content_type, **self.params.headers},
        )
        return f"webhook {response.status_code}"
