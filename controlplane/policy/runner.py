"""The policy loop: every `automation.interval_seconds` (in a worker), decide on new
and changed incidents (`decider.Decider`), execute approved decisions once and hand over
executions whose lease expired (`executor.Executor`).

This module only wires the steps to their dependencies (the store, the cluster connection,
Prometheus for verification) and runs them on a timer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import remediations
from controlplane import slos
from controlplane.collectors.prometheus import PrometheusCollector
from controlplane.config import Settings
from controlplane.domain.errors import ControlPlaneError, PermanentError
from controlplane.loops import every
from controlplane.policy.cluster import LazyCluster, connect
from controlplane.policy.cost import CostModel
from controlplane.policy.decider import Decider
from controlplane.policy.executor import Executor, PromQLCheck
from controlplane.policy.schema import Policy, load_policies
from controlplane.storage import Database
from remediations import Action, ActionParams, Kube

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    decided: list[int] = field(default_factory=list)
    executed: list[int] = field(default_factory=list)
    handed_over: list[int] = field(default_factory=list)


class PolicyRunner:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        policies: list[Policy] | None = None,
        kube: Callable[[], Kube] | None = None,
        promql: PromQLCheck | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        owner: str | None = None,
    ) -> None:
        config = settings.automation
        self.interval = config.interval_seconds
        if policies is None:
            folder = config.policies_dir
            policies = load_policies(folder) if folder is not None else []
        if config.dry_run_only:
            policies = [p.model_copy(update={"mode": "dry_run"}) for p in policies]
        self.policies = policies
        self.kube = LazyCluster(kube or (lambda: connect(config.kubernetes)))
        self.decider = Decider(
            db,
            policies,
            self._build,
            global_max_per_hour=config.max_actions_per_hour,
            clock=clock,
            lease_seconds=settings.coordination.lease_seconds,
            budget=_budget_reader(settings),
            cost=CostModel(settings.cost),
        )
        self.executor = Executor(
            db,
            self._build,
            promql or _prometheus_check(settings),
            owner=owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
            lease_seconds=config.lease_seconds,
            clock=clock,
        )

    async def run_forever(self, stop: asyncio.Event) -> None:
        await every(self.interval, lambda: asyncio.to_thread(self.cycle), stop, "policy")
        try:  # another process need not wait for the lease to expire
            await asyncio.to_thread(self.decider.lease.release)
        except ControlPlaneError as exc:
            log.warning("policy lease not released (it expires by itself): %s", exc)

    def cycle(self) -> CycleReport:
        return CycleReport(
            decided=self.decider.run(),
            executed=self.executor.execute_approved(),
            handed_over=self.executor.expire_leases(),
        )

    def _build(self, params: ActionParams) -> Action[Any]:
        return remediations.build(params, self.kube)


def shipped_policies() -> Path:
    """The example policies shipped in runbooks/policies (used by the demo)."""
    return Path(str(files("runbooks").joinpath("policies")))


def _budget_reader(settings: Settings) -> Callable[[str], float | None]:
    """An SLO's error budget left now, from Prometheus (None: unknown SLO or no data)."""
    by_name = {slo.name: slo for slo in settings.slos}

    def left(name: str) -> float | None:
        slo = by_name.get(name)
        if slo is None or not settings.prometheus.url:
            return None
        collector = PrometheusCollector(settings.prometheus)
        found = collector.instant(slos.live_ratio(slo, slos.budget_window(slo)))
        spent = float(found[0]["value"][1]) if found else math.nan
        return None if math.isnan(spent) else 1 - spent / (1 - slo.objective)

    return left


def _prometheus_check(settings: Settings) -> PromQLCheck:
    """An instant query that holds when it returns a non-empty vector."""
    if not settings.prometheus.url:

        def unconfigured(query: str) -> bool:
            raise PermanentError(f"verify.promql {query!r} needs prometheus.url")

        return unconfigured
    collector = PrometheusCollector(settings.prometheus)
    return lambda query: bool(collector.instant(query))
