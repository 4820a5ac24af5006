"""Alertmanager silences (API v2): create, list, expire, and which ones cover an incident.

A silence made from an incident matches the incident's common labels (or matchers the user
gives) and says in its comment which incident it is for and who made it, so that whoever
reads it in Alertmanager's own UI knows why it is there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from controlplane.domain.errors import (
    InvalidInputError,
    NotFoundError,
    PermanentError,
    SourceUnavailableError,
)

#: Where a silence's comment names its incident (read back into `Silence.incident_id`).
_INCIDENT = re.compile(r"\[aiops incident #(\d+)[,\]]")


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def matches(self, labels: dict[str, str]) -> bool:
        value = labels.get(self.name, "")
        hit = re.fullmatch(self.value, value) is not None if self.is_regex else value == self.value
        return hit == self.is_equal

    def as_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.is_regex,
            "isEqual": self.is_equal,
        }


@dataclass(frozen=True)
class Silence:
    id: str
    state: str
    matchers: list[Matcher]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str

    @property
    def incident_id(self) -> int | None:
        found = _INCIDENT.search(self.comment)
        return int(found.group(1)) if found else None

    def covers(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Silence:
        return cls(
            id=data["id"],
            state=data["status"]["state"],
            matchers=[
                Matcher(m["name"], m["value"], m.get("isRegex", False), m.get("isEqual", True))
                for m in data["matchers"]
            ],
            starts_at=datetime.fromisoformat(data["startsAt"]),
            ends_at=datetime.fromisoformat(data["endsAt"]),
            created_by=data.get("createdBy", ""),
            comment=data.get("comment", ""),
        )


def incident_comment(incident_id: int, author: str, comment: str) -> str:
    return f"{comment} [aiops incident #{incident_id}, silenced by {author}]"


class Silences:
    """A client of one Alertmanager's silences."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if not url:
            raise PermanentError("silences need alertmanager.url in the settings")
        self.url, self.timeout = url.rstrip("/"), timeout

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = httpx.request(
                method, f"{self.url}/api/v2{path}", timeout=self.timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            raise SourceUnavailableError(f"Alertmanager {self.url} unreachable: {exc}") from None
        if response.status_code >= 500:
            raise SourceUnavailableError(
                f"Alertmanager answered {response.status_code}: {response.text[:200]}"
            )
        if response.status_code == 404:
            raise NotFoundError(f"Alertmanager: {response.text.strip()[:200] or 'not found'}")
        if response.status_code >= 400:
            raise InvalidInputError(f"Alertmanager refused: {response.text.strip()[:300]}")
        return response

    def create(self, matchers: list[Matcher], minutes: float, created_by: str, comment: str) -> str:
        if not matchers:
            raise InvalidInputError("matchers: a silence needs at least one matcher, got []")
        now = datetime.now(UTC)
        body = {
            "matchers": [m.as_api() for m in matchers],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=minutes)).isoformat(),
            "createdBy": created_by,
            "comment": comment,
        }
        return str(self._call("POST", "/silences", json=body).json()["silenceID"])

    def all(self) -> list[Silence]:
        return [Silence.from_api(s) for s in self._call("GET", "/silences").json()]

    def get(self, silence_id: str) -> Silence:
        return Silence.from_api(self._call("GET", f"/silence/{silence_id}").json())

    def expire(self, silence_id: str) -> None:
        self._call("DELETE", f"/silence/{silence_id}")

    def covering(self, labels: dict[str, str]) -> list[Silence]:
        """Active and pending silences whose matchers all match `labels`."""
        return [s for s in self.all() if s.state != "expired" and s.covers(labels)]
