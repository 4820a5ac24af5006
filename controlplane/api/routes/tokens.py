"""`/api/v1/tokens` (admin): create, list and revoke API tokens; `/api/v1/whoami` for anyone."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from controlplane import auth
from controlplane.api.deps import Admin, Anyone, DbDep
from controlplane.api.errors import ApiError
from controlplane.api.schemas import (
    TokenCreate,
    TokenCreated,
    TokenPublic,
    WhoAmI,
    error_responses,
)

router = APIRouter(tags=["tokens"])
_ERRORS = error_responses(401, 403)


@router.get("/whoami", response_model=WhoAmI, responses=_ERRORS)
async def whoami(principal: Anyone) -> WhoAmI:
    """The caller's token name and role (any role, the webhook role included)."""
    return WhoAmI(name=principal.name, role=principal.role)


@router.get("/tokens", response_model=list[TokenPublic], responses=_ERRORS)
async def list_tokens(db: DbDep, _: Admin) -> list[TokenPublic]:
    def query() -> list[TokenPublic]:
        with db.read() as session:
            return [TokenPublic.model_validate(r) for r in auth.list_tokens(session)]

    return await run_in_threadpool(query)


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=201,
    responses={**_ERRORS, **error_responses(409)},
)
async def create_token(body: TokenCreate, db: DbDep, actor: Admin) -> TokenCreated:
    def create() -> TokenCreated:
        with db.write() as session:
            row, secret = auth.create_token(session, body.name, body.role, actor=actor.name)
            return TokenCreated(**TokenPublic.model_validate(row).model_dump(), token=secret)

    try:
        return await run_in_threadpool(create)
    except ValueError as exc:
        raise ApiError(
            422, f"name: {exc}", errors=[{"field": "name", "message": str(exc), "value": body.name}]
        ) from None


@router.delete(
    "/tokens/{name}", response_model=TokenPublic, responses={**_ERRORS, **error_responses(404)}
)
async def revoke_token(name: str, request: Request, db: DbDep, actor: Admin) -> TokenPublic:
    def revoke() -> TokenPublic:
        with db.write() as session:
            return TokenPublic.model_validate(auth.revoke_token(session, name, actor=actor.name))

    revoked = await run_in_threadpool(revoke)
    request.app.state.token_cache.clear()
    return revoked
