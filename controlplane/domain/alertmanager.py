"""Alertmanager webhook payload, version 4, validated strictly.

Strict types (no "1" for 1), required fields as Alertmanager always sends them, unknown extra
fields tolerated (newer Alertmanagers may add some). `endsAt` of `0001-01-01T00:00:00Z` means
"still firing" and becomes None. An alert *episode* is `fingerprint` + `startsAt`: the
fingerprint names the label set, the start time tells episodes of one label set apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

_STRICT = ConfigDict(strict=True, extra="ignore", populate_by_name=True, frozen=True)
_NEVER_YEAR = 1


class Alert(BaseModel):
    model_config = _STRICT

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime | None = Field(alias="endsAt")
    generator_url: str = Field(alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=64)

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _parse_time(cls, value: object) -> object:
        # Strict mode refuses strings for datetimes; Alertmanager sends RFC 3339 strings.
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return None if parsed.year == _NEVER_YEAR else parsed
        return value

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "unnamed alert")


class Notification(BaseModel):
    """One webhook delivery: a group of alerts routed together by Alertmanager."""

    model_config = _STRICT

    version: Literal["4"]
    receiver: str
    status: Literal["firing", "resolved"]
    alerts: list[Alert] = Field(min_length=1, max_length=10_000)
    group_labels: dict[str, str] = Field(alias="groupLabels")
    common_labels: dict[str, str] = Field(alias="commonLabels")
    common_annotations: dict[str, str] = Field(alias="commonAnnotations")
    external_url: str = Field(alias="externalURL")
    group_key: str = Field(alias="groupKey", min_length=1)
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0)
