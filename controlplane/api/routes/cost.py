"""`/api/v1/cost`: what automated scaling added to spend, against each budget, and the priced
decisions (the FinOps view)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from controlplane.api.deps import DbDep, SettingsDep, Viewer
from controlplane.api.schemas import error_responses
from controlplane.config import Settings
from controlplane.policy.cost import CostModel, Spend, month_start, usage
from controlplane.storage import decisions as store
from controlplane.storage.models import DecisionRow
from remediations import TargetRef

router = APIRouter(prefix="/cost", tags=["cost"])


@router.get("", responses=error_responses(401, 403))
async def cost_view(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Each budget's caps and what automation added this hour and this month (to the month's
    end), and the newest decisions that carry a cost."""
    now = datetime.now(UTC)

    def query() -> dict[str, Any]:
        with db.read() as session:
            spent = [
                Spend(TargetRef(t["kind"], t["name"], t.get("namespace")), per_hour, at)
                for t, at, per_hour in store.spend_since(session, month_start(now))
            ]
            rows = session.scalars(
                select(DecisionRow).order_by(DecisionRow.decision_id.desc()).limit(5 * limit)
            ).all()
            priced = [
                {
                    "decision_id": r.decision_id,
                    "incident_id": r.incident_id,
                    "policy": r.policy,
                    "target": r.target,
                    "status": r.status,
                    "per_hour": (r.plan or {})["cost"]["per_hour"],
                    "counts": r.status in store.ACTING,  # against the budgets
                    "created_at": r.created_at.isoformat(),
                }
                for r in rows
                if isinstance(((r.plan or {}).get("cost") or {}).get("per_hour"), int | float)
            ][:limit]
        budgets = []
        for budget in settings.cost.budgets:
            hour, month = usage(budget, spent, now)
            budgets.append(
                {
                    **budget.model_dump(),
                    "added_last_hour": hour,
                    "added_this_month": month,
                }
            )
        model = _model(request, settings)
        cpu, memory, source = model.rates()
        return {
            "currency": settings.cost.currency,
            "prices": {"cpu_core_hour": cpu, "memory_gib_hour": memory, "source": source,
                       "error": model.opencost_error},
            "budgets": budgets,
            "decisions": priced,
        }  # fmt: skip

    return await run_in_threadpool(query)


def _model(request: Request, settings: Settings) -> CostModel:
    """One cost model per app: its OpenCost prices are read once an interval, not per call."""
    model: CostModel | None = getattr(request.app.state, "cost_model", None)
    if model is None:
        model = request.app.state.cost_model = CostModel(settings.cost)
    return model
