"""The cost of automated scaling, and the budget guardrail.

A scale plan's impact carries its replicas and the CPU cores and memory GiB they request; the
cost model prices the change per hour (a workload's own replica-hour price, else its requests
at the CPU-core-hour and GiB-hour prices). A budget caps what automation may *add* to a scope's
spend: per hour (the changes of the last hour and this one) and per month (each change counted
from when it was made to the end of the month, UTC). Past a cap a change is refused, or sent
to a person for approval, as the budget says. Scaling in saves money and always passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from controlplane.collectors.opencost import OpenCostPrices
from controlplane.config import BudgetSettings, CostSettings
from controlplane.policy.guardrails import Verdict
from remediations import Impact, TargetRef
from remediations.base import REPLICAS

CPU, MEMORY = "cpu_cores", "memory_gib"
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Spend:
    """What an earlier automated change added per hour, and when it was decided."""

    target: TargetRef
    per_hour: float
    at: datetime


def month_end(now: datetime) -> datetime:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def usage(budget: BudgetSettings, past: Sequence[Spend], now: datetime) -> tuple[float, float]:
    """What automation added in the budget's scope: per hour over the last hour, and in
    money from each change until the month ends."""
    mine = [s for s in past if budget.covers(s.target.namespace, s.target.name) and s.at <= now]
    hour = sum(s.per_hour for s in mine if now - s.at < HOUR)
    end = month_end(now)
    month = sum(s.per_hour * (end - s.at) / HOUR for s in mine if s.at >= month_start(now))
    return hour, month


class CostModel:
    """Prices changes: the settings' prices, or the OpenCost API's when one is configured
    (and has answered)."""

    def __init__(self, settings: CostSettings) -> None:
        self.settings = settings
        self.opencost = (
            OpenCostPrices(
                settings.opencost_url, settings.opencost_window, settings.opencost_refresh_seconds
            )
            if settings.opencost_url
            else None
        )

    @property
    def opencost_error(self) -> str | None:
        """Why the OpenCost prices could not be read last time, if they could not."""
        return self.opencost.error if self.opencost is not None else None

    def rates(self) -> tuple[float, float, str]:
        """Per core-hour and per GiB-hour, and where they come from."""
        prices = self.opencost.current() if self.opencost is not None else None
        if prices is not None:
            return prices.cpu_core_hour, prices.memory_gib_hour, "opencost"
        return self.settings.cpu_core_hour, self.settings.memory_gib_hour, "settings"

    @property
    def currency(self) -> str:
        return self.settings.currency

    def per_hour(self, target: TargetRef, impact: Impact) -> float | None:
        """What the change adds per hour (negative: saves); None when nothing prices it."""
        price = self.settings.replica_hour.get(f"{target.namespace}/{target.name}")
        replicas = impact.of(REPLICAS)
        if price is not None and replicas is not None:
            return (replicas[1] - replicas[0]) * price
        cpu, memory = impact.of(CPU), impact.of(MEMORY)
        rates = self.rates()[:2]
        if (cpu is None and memory is None) or not any(rates):
            return None
        added = 0.0
        for change, rate in ((cpu, rates[0]), (memory, rates[1])):
            if change is not None:
                added += (change[1] - change[0]) * rate
        return added

    def check(
        self, target: TargetRef, added: float, past: Sequence[Spend], now: datetime, v: Verdict
    ) -> Literal["ok", "refuse", "approval"]:
        """Check the change against every budget covering its target (recorded on `v`)."""
        outcome: Literal["ok", "refuse", "approval"] = "ok"
        for budget in self.settings.budgets:
            if not budget.covers(target.namespace, target.name):
                continue
            within, detail = self._within(budget, target, added, past, now)
            if within or budget.over == "refuse":
                v.check(f"budget {budget.name}", within, detail)
                outcome = "refuse" if not within else outcome
            else:
                v.check(f"budget {budget.name}", True, detail + "; a person must approve")
                outcome = "approval" if outcome == "ok" else outcome
        return outcome

    def _within(
        self,
        budget: BudgetSettings,
        target: TargetRef,
        added: float,
        past: Sequence[Spend],
        now: datetime,
    ) -> tuple[bool, str]:
        money = self.settings.currency
        if added <= 0:
            return True, f"saves {-added:.2f} {money}/h"
        hour, month = usage(budget, past, now)
        parts, within = [], True
        if budget.per_hour is not None:
            ok = hour + added <= budget.per_hour
            within = within and ok
            parts.append(
                f"adds {added:.2f} {money}/h to {hour:.2f} added in the last hour "
                f"(cap {budget.per_hour:g}/h)"
            )
        if budget.per_month is not None:
            rest = added * (month_end(now) - now) / HOUR
            ok = month + rest <= budget.per_month
            within = within and ok
            parts.append(
                f"{rest:.0f} {money} to the month end on top of {month:.0f} "
                f"(cap {budget.per_month:g}/month)"
            )
        return within, f"{target.key}: " + "; ".join(parts)
