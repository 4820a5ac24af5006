"""Weekly time windows (change windows of policies, quiet hours of notification routes)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Window(BaseModel):
    """A weekly window in UTC, from `start` to `end` on each of `days` (across midnight when
    `end` is before `start`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: list[Day] = Field(default_factory=lambda: list(DAYS))
    start: time
    end: time

    def contains(self, at: datetime) -> bool:
        if DAYS[at.weekday()] not in self.days:
            return False
        now = at.time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end  # across midnight
