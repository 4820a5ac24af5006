"""The cost model and the budget guardrail: prices from a replica-hour price or from the pod
template's requests, caps per hour and per month (refuse or ask a person), scale-in always
passes; through the policy engine, the decision records what it adds per hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.config import CostSettings
from controlplane.policy.cost import CostModel, Spend, month_end
from controlplane.policy.engine import decide
from controlplane.policy.guardrails import IncidentView, Verdict
from controlplane.policy.schema import Policy
from remediations import Impact, Plan, TargetRef

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)  # 20 days and 12 hours before January
CHECKOUT = TargetRef("Deployment", "checkout", "shop")
SEARCH = TargetRef("Deployment", "search", "shop")


def model(**fields) -> CostModel:
    return CostModel(CostSettings.model_validate({"currency": "EUR", **fields}))


def scale(before: int, after: int, cpu: float = 0.5, memory: float = 1.0) -> Impact:
    return Impact(
        {
            "replicas": (before, after),
            "cpu_cores": (before * cpu, after * cpu),
            "memory_gib": (before * memory, after * memory),
        }
    )


def test_a_change_is_priced_by_its_replica_price_else_by_its_requests():
    priced = model(replica_hour={"shop/checkout": 0.12}, cpu_core_hour=0.04, memory_gib_hour=0.005)
    assert priced.per_hour(CHECKOUT, scale(3, 5)) == pytest.approx(0.24)
    assert priced.per_hour(SEARCH, scale(3, 5)) == pytest.approx(2 * (0.5 * 0.04 + 1.0 * 0.005))
    assert priced.per_hour(SEARCH, Impact({"replicas": (3, 5)})) is None  # no requests known
    assert model().per_hour(SEARCH, scale(3, 5)) is None  # no prices


def test_month_end_is_the_first_of_the_next_month():
    assert month_end(NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    assert month_end(datetime(2026, 2, 28, 23, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("budget", "past", "outcome", "ok"),
    [
        ({"per_hour": 1.0}, [], "ok", True),
        ({"per_hour": 1.0}, [Spend(CHECKOUT, 0.8, NOW - timedelta(minutes=30))], "refuse", False),
        ({"per_hour": 1.0}, [Spend(CHECKOUT, 0.8, NOW - timedelta(hours=2))], "ok", True),
        ({"per_month": 100.0}, [], "refuse", False),  # 0.24/h for 492 h = 118
        ({"per_month": 200.0}, [], "ok", True),
        ({"per_month": 100.0, "over": "approval"}, [], "approval", True),
        ({"per_hour": 1.0, "namespace": "other"}, [], "ok", None),  # not in scope
    ],
)
def test_budgets_cap_what_automation_adds(budget, past, outcome, ok):
    priced = model(replica_hour={"shop/checkout": 0.12}, budgets=[{"name": "shop", **budget}])
    verdict = Verdict(True)
    assert priced.check(CHECKOUT, 0.24, past, NOW, verdict) == outcome
    if ok is None:
        assert verdict.checks == []
    else:
        (check,) = verdict.checks
        assert check["ok"] is ok
        assert check["guardrail"] == "budget shop"


def test_scaling_in_always_passes():
    priced = model(replica_hour={"shop/checkout": 0.12}, budgets=[{"name": "b", "per_hour": 0}])
    verdict = Verdict(True)
    assert priced.check(CHECKOUT, -0.24, [], NOW, verdict) == "ok"
    assert verdict.checks[0]["detail"] == "saves 0.24 EUR/h"


def test_the_engine_refuses_over_budget_and_records_the_cost():
    policy = Policy.model_validate(
        {"name": "p", "action": {"type": "scale_deployment", "namespace": "shop",
                                 "deployment": "checkout", "by": 2}, "mode": "auto"}
    )  # fmt: skip
    view = IncidentView(1, "alertmanager", "checkout", "critical", {"namespace": "shop"})

    def planner(params):
        plan = Plan("scale_deployment", CHECKOUT.as_dict(), {"replicas": 3}, {"replicas": 5}, "s")
        plan.details["requests_per_replica"] = {"cpu_cores": 0.5, "memory_gib": 1.0}
        return plan

    def run(budget):
        cost = model(cpu_core_hour=0.04, memory_gib_hour=0.005, budgets=[budget])
        return decide(policy, view, [], NOW, paused=False, global_max_per_hour=10,
                      planner=planner, cost=cost)  # fmt: skip

    refused = run({"name": "tight", "per_hour": 0.01})
    assert refused.status == "refused"
    assert "adds 0.05 EUR/h to 0.00 added in the last hour (cap 0.01/h)" in refused.reason
    assert refused.cost_per_hour == pytest.approx(0.05)
    asked = run({"name": "tight", "per_hour": 0.01, "over": "approval"})
    assert (asked.status, asked.mode) == ("pending_approval", "approval")
    assert run({"name": "loose", "per_hour": 1}).status == "approved"


def test_a_replica_is_priced_by_its_workload_first_then_its_requests():
    cost = CostSettings(
        currency="EUR",
        cpu_core_hour=0.04,
        memory_gib_hour=0.005,
        replica_hour={"shop/checkout": 0.1},
    )
    assert cost.replica_price("shop/checkout", 0.5, 1) == 0.1
    assert cost.replica_price("shop/search", 0.5, 1) == pytest.approx(0.025)
    assert cost.replica_price(None, 0, 0) is None  # nothing prices it: no figure, not zero
