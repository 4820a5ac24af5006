"""Alertmanager webhook payload, version 4, validated strictly.

Strict types (no "1" for 1), required fields as Alertmanager always sends them, unknown extra
fields tolerated (newer Alertmanagers may add some). `endsAt` of `0001-01-01T00:00:00Z` means
"still firing" and becomes None. An alert *episode* is `fingerprint` + `startsAt`: the
fingerprint names the label set, the start time tells episodes of one label set apart.
Everything must be storable (`domain.storable`): no NUL or lone surrogate in any text, times
that convert to UTC, and the labels that become columns (`alertname`, and `service`, `app`,
`job`, which name the incident's service) at most 255 characters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controlplane.domain.storable import NO_NUL, StoredText, StoredTime, storable_time

_STRICT = ConfigDict(strict=True, extra="ignore", populate_by_name=True, frozen=True)
_NEVER_YEAR = 1
#: Labels that become columns of 255 characters: the alert's name and the incident's service.
SERVICE_LABELS = ("service", "app", "job")
COLUMN_LABELS = ("alertname", *SERVICE_LABELS)
#: Label names and values: no NUL in either (`propertyNames` says so of the names).
Labels = Annotated[
    dict[StoredText, StoredText],
    Field(json_schema_extra={"propertyNames": {"pattern": NO_NUL}}),
]


class Alert(BaseModel):
    model_config = _STRICT

    status: Literal["firing", "resolved"]
    labels: Labels = Field(
        json_schema_extra={
            "propertyNames": {"pattern": NO_NUL},
            "properties": {name: {"type": "string", "maxLength": 255} for name in COLUMN_LABELS},
        }
    )
    annotations: Labels
    starts_at: StoredTime = Field(alias="startsAt")
    ends_at: StoredTime | None = Field(alias="endsAt")
    generator_url: StoredText = Field(alias="generatorURL")
    fingerprint: StoredText = Field(min_length=1, max_length=64)

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _parse_time(cls, value: object) -> object:
        # Strict mode refuses strings for datetimes; Alertmanager sends RFC 3339 strings.
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return None if parsed.year == _NEVER_YEAR else storable_time(parsed)
        return value

    @field_validator("labels")
    @classmethod
    def _column_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for name in COLUMN_LABELS:
            value = labels.get(name, "")
            if len(value) > 255:
                raise ValueError(
                    f"label {name!r} is {len(value)} characters long; at most 255 "
                    f"(it names the alert or its service), got {value[:40]!r}..."
                )
        return labels

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "unnamed alert")


class Notification(BaseModel):
    """One webhook delivery: a group of alerts routed together by Alertmanager."""

    model_config = _STRICT

    version: Literal["4"]
    receiver: StoredText
    status: Literal["firing", "resolved"]
    alerts: list[Alert] = Field(min_length=1, max_length=10_000)
    group_labels: Labels = Field(alias="groupLabels")
    common_labels: Labels = Field(alias="commonLabels")
    common_annotations: Labels = Field(alias="commonAnnotations")
    external_url: StoredText = Field(alias="externalURL")
    group_key: StoredText = Field(alias="groupKey", min_length=1)
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0)

    @field_validator("truncated_alerts", mode="before")
    @classmethod
    def _whole_number(cls, value: object) -> object:
        # JSON has one number type: 3.0 is the integer 3 (a string "3" is still refused).
        return int(value) if isinstance(value, float) and value.is_integer() else value
