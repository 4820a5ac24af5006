"""`/policies` (what is loaded, and why not), `/policies/backtest`, and `/runbooks`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

import runbooks
from controlplane.api.deps import DbDep, Viewer
from controlplane.api.schemas import (
    BacktestPublic,
    BacktestRequest,
    PoliciesPublic,
    PolicyPublic,
    RunbookDetailPublic,
    RunbookPublic,
    error_responses,
)
from controlplane.config import Settings
from controlplane.domain.errors import ConfigError, InvalidInputError, NotFoundError
from controlplane.policy.backtest import backtest
from controlplane.policy.schema import Policy, load_policies

router = APIRouter(tags=["policies"])
_ERRORS = error_responses(401, 403, 404)


def current_policies(settings: Settings) -> tuple[list[Policy], list[str]]:
    """The policies as the files say now, and the load error if they do not validate."""
    folder = settings.automation.policies_dir
    if folder is None:
        return [], []
    try:
        return load_policies(folder), []
    except ConfigError as exc:
        return [], [str(exc)]


@router.get("/policies", response_model=PoliciesPublic, responses=_ERRORS)
async def list_policies(request: Request, _: Viewer) -> PoliciesPublic:
    settings: Settings = request.app.state.settings
    policies, errors = await run_in_threadpool(current_policies, settings)
    folder = settings.automation.policies_dir
    return PoliciesPublic(
        directory=str(folder) if folder else None,
        policies=[_public(p) for p in policies],
        errors=errors,
    )


@router.post("/policies/backtest", response_model=BacktestPublic, responses=_ERRORS)
async def run_backtest(
    request: Request, db: DbDep, _: Viewer, body: BacktestRequest | None = None
) -> BacktestPublic:
    """Replay stored incidents through the current policies (nothing is changed)."""
    settings: Settings = request.app.state.settings
    policies, errors = current_policies(settings)
    if errors:
        raise InvalidInputError(errors[0])
    since, until = (body.since, body.until) if body else (None, None)

    def run() -> BacktestPublic:
        with db.read() as session:
            result = backtest(
                session,
                policies,
                since=since,
                until=until,
                global_max_per_hour=settings.automation.max_actions_per_hour,
                cost=settings.cost,
            )
        return BacktestPublic.model_validate(result.as_dict())

    return await run_in_threadpool(run)


@router.get("/runbooks", response_model=list[RunbookPublic], responses=_ERRORS)
async def list_runbooks(_: Viewer) -> list[RunbookPublic]:
    return [RunbookPublic(name=n, title=_title(runbooks.read(n))) for n in runbooks.names()]


@router.get("/runbooks/{name}", response_model=RunbookDetailPublic, responses=_ERRORS)
async def get_runbook(name: str, request: Request, _: Viewer) -> RunbookDetailPublic:
    try:
        text = runbooks.read(name)
    except KeyError as exc:
        raise NotFoundError(str(exc.args[0])) from None
    policies, _errors = await run_in_threadpool(current_policies, request.app.state.settings)
    return RunbookDetailPublic(
        name=name,
        title=_title(text),
        markdown=text,
        policies=[p.name for p in policies if p.runbook == name],
    )


def _title(markdown: str) -> str:
    first = next((line for line in markdown.splitlines() if line.startswith("# ")), "")
    return first.removeprefix("# ").removeprefix("Runbook: ").strip()


def _public(policy: Policy) -> PolicyPublic:
    return PolicyPublic(
        name=policy.name,
        version=policy.version,
        description=policy.description,
        runbook=policy.runbook,
        enabled=policy.enabled,
        mode=policy.mode,
        action=policy.action.model_dump(),
        match=policy.match.model_dump(exclude_none=True),
        guardrails=policy.guardrails.model_dump(mode="json"),
        verify=policy.verify.model_dump(),
        rollback_on_failure=policy.rollback_on_failure,
    )
