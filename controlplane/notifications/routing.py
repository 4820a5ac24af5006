"""The notifications file: channels (each a registered channel's parameters, chosen by
`type`) and routes (which events go to which channels, when, and how often).

```yaml
channels:
  oncall-slack: {type: slack_webhook, url: "${SLACK_WEBHOOK_URL}"}
  pager: {type: pagerduty, routing_key: "${PAGERDUTY_ROUTING_KEY}"}
routes:
  - name: page-critical
    events: [incident.opened, incident.acknowledged, incident.resolved]
    severities: [critical]
    channels: [pager]
  - name: approvals
    events: [approval.waiting]
    channels: [oncall-slack]
    escalate_after_minutes: 15
    escalate_to: [pager]
```

`${NAME}` is replaced by the environment variable NAME when the file loads (secrets stay out
of the file). Unknown keys, unknown channels and bad values are errors naming the file, the
key and the value, as for policies.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from controlplane.domain.errors import ConfigError
from controlplane.domain.models import Severity
from controlplane.domain.windows import Window
from controlplane.notifications import REGISTRY
from controlplane.notifications.base import ChannelParams
from controlplane.notifications.events import Event, EventType

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

if TYPE_CHECKING:
    AnyChannelParams = ChannelParams
else:  # the discriminated union of every registered channel's params model
    AnyChannelParams = Annotated[
        Union[tuple(cls.Params for cls in REGISTRY.values())],  # noqa: UP007
        Field(discriminator="type"),
    ]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuietHours(_Strict):
    """Weekly windows in a time zone when a route stays silent, except for `allow`."""

    windows: list[Window] = Field(..., min_length=1)
    timezone: str = "UTC"
    allow: list[Severity] = Field(
        default_factory=list, description="Severities that still go out (e.g. critical)."
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not an IANA time zone: {value!r}") from None
        return value

    def mutes(self, event: Event, now: datetime) -> bool:
        if event.severity in self.allow:
            return False
        local = now.astimezone(ZoneInfo(self.timezone))
        return any(w.contains(local) for w in self.windows)


class Route(_Strict):
    """Every given filter must match (lists: any of their values); omitted ones match all."""

    name: str
    events: list[EventType] = Field(..., min_length=1)
    severities: list[Severity] | None = None
    services: list[str] | None = None
    sources: list[str] | None = Field(
        None, description="alertmanager, detector, forecast or security (incident events)."
    )
    channels: list[str] = Field(..., min_length=1)
    group_seconds: float = Field(
        0, ge=0, le=3600, description="Collect this route's events this long into one message."
    )
    quiet_hours: QuietHours | None = None
    escalate_after_minutes: float | None = Field(
        None, gt=0, description="An approval still waiting this long goes to `escalate_to`."
    )
    escalate_to: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lowercase letters, digits, dashes and underscores")
        return value

    @model_validator(mode="after")
    def _escalation(self) -> Route:
        if (self.escalate_after_minutes is None) != (not self.escalate_to):
            raise ValueError("escalate_after_minutes and escalate_to go together")
        if self.escalate_to and EventType.APPROVAL_WAITING not in self.events:
            raise ValueError("escalation is for approvals: add approval.waiting to events")
        return self

    def matches(self, event: Event) -> bool:
        if event.type not in self.events:
            return False
        if self.severities is not None and event.severity not in self.severities:
            return False
        if self.sources is not None and (
            event.incident is None or event.incident.source not in self.sources
        ):
            return False
        return self.services is None or event.service in self.services


class NotificationFile(_Strict):
    channels: dict[str, AnyChannelParams] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_channels(self) -> NotificationFile:
        for route in self.routes:
            for name in [*route.channels, *route.escalate_to]:
                if name not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none"
                    raise ValueError(
                        f"route {route.name!r}: no channel named {name!r} (channels: {known})"
                    )
        names = [r.name for r in self.routes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"route name {twice[0]!r} is used twice")
        return self


def load(path: Path) -> NotificationFile:
    where = f"notifications file {str(path)!r}"
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from None
    return parse(loaded or {}, where)


def parse(loaded: Any, where: str) -> NotificationFile:
    """Validate a loaded document; `where` names it in errors."""
    try:
        return NotificationFile.model_validate(_substitute(loaded, [], where))
    except ValidationError as exc:
        lines = [f"{where}:"]
        for error in exc.errors():
            key = ".".join(str(p) for p in error["loc"] if str(p) not in REGISTRY)
            message = error["msg"].removeprefix("Value error, ")
            value = error.get("input")
            shown = "<secret>" if isinstance(value, str) and _secretish(key) else repr(value)
            lines.append(f"  {key or '(top)'} = {shown}: {message}")
        raise ConfigError("\n".join(lines)) from None


def _secretish(key: str) -> bool:
    return any(word in key for word in ("token", "password", "routing_key"))


def _substitute(value: Any, path: list[str], where: str) -> Any:
    """Replace `${NAME}` in strings by the environment's NAME; a missing one is an error."""
    if isinstance(value, dict):
        return {k: _substitute(v, [*path, str(k)], where) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, [*path, str(i)], where) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def variable(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in os.environ:
            key = ".".join(path)
            raise ConfigError(f"{where}: {key} = {value!r}: environment variable {name} is not set")
        return os.environ[name]

    return _VARIABLE.sub(variable, value)
