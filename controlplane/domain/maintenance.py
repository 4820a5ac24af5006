"""Maintenance windows: while one is open for a service or namespace, its incidents page
nobody and automation for them runs in a stated mode (`off`, `dry_run` or `approval`; never
more than the policy's own mode).

A window is one-off (`starts_at` to `ends_at`) or recurring (a cron expression in UTC for each
opening, `duration_minutes` long, between `starts_at` and an optional `ends_at`). Incidents
are still opened and recorded inside a window: the intake is idempotent on payloads, so an
alert dropped now would not come back when the window closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from croniter import croniter

AutomationMode = Literal["off", "dry_run", "approval"]
#: Policy modes from least to most automatic: a window caps a policy at its own mode.
MODE_ORDER = ("off", "dry_run", "approval", "auto")


@dataclass(frozen=True)
class MaintenanceWindow:
    window_id: int
    name: str
    service: str | None
    namespace: str | None
    starts_at: datetime
    ends_at: datetime | None
    recurrence: str | None
    duration_minutes: float | None
    mute_paging: bool
    automation: AutomationMode | None

    def open_at(self, at: datetime) -> bool:
        if at < self.starts_at or (self.ends_at is not None and at >= self.ends_at):
            return False
        if self.recurrence is None:
            return True
        assert self.duration_minutes is not None
        after = at + timedelta(microseconds=1)  # an opening at `at` itself counts
        last_opening: datetime = croniter(self.recurrence, after).get_prev(datetime)
        return at < last_opening + timedelta(minutes=self.duration_minutes)

    def covers(self, service: str | None, namespace: str | None) -> bool:
        """Whether an incident of this service and namespace is in scope (a window with
        neither covers everything)."""
        if self.service is not None and self.service != service:
            return False
        return self.namespace is None or self.namespace == namespace

    def cap(self, mode: str) -> str:
        """The mode a policy runs in inside this window."""
        if self.automation is None:
            return mode
        return min(mode, self.automation, key=MODE_ORDER.index)

    @property
    def label(self) -> str:
        return f"maintenance window #{self.window_id} {self.name!r}"


def covering(
    windows: list[MaintenanceWindow], service: str | None, namespace: str | None, at: datetime
) -> list[MaintenanceWindow]:
    return [w for w in windows if w.open_at(at) and w.covers(service, namespace)]
