"""Dependencies shared by the routers: the store, the settings and the calling principal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from controlplane import auth
from controlplane.api.errors import ApiError
from controlplane.config import Settings
from controlplane.domain.models import Principal, Role
from controlplane.storage import Database


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def authenticated(request: Request, db: DbDep, settings: SettingsDep) -> Principal:
    """The principal behind the bearer token, any role; 401 when there is none or it is unknown."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(
            401,
            "missing bearer token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
            reason="unauthorized",
        )
    cache: auth.TokenCache = request.app.state.token_cache
    secret = secret.strip()
    principal = cache.peek(secret)  # a hit costs no thread hop and no query
    if principal is None:
        principal = await run_in_threadpool(_authenticate, db, secret, settings)
        if principal is not None:
            cache.remember(secret, principal)
    if principal is None:
        raise ApiError(
            401,
            "unknown or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
            reason="unauthorized",
        )
    return principal


def check_role(principal: Principal, role: Role) -> Principal:
    if not principal.role.allows(role):
        raise ApiError(
            403,
            f"token {principal.name!r} has role {principal.role.value!r}; "
            f"this needs {role.value!r}",
            reason="forbidden",
        )
    return principal


def require(role: Role) -> Callable[[Principal], Principal]:
    """A dependency: the authenticated principal, if its role may act as `role` (else 403)."""

    def dependency(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        return check_role(principal, role)

    return dependency


def _authenticate(db: Database, secret: str, settings: Settings) -> Principal | None:
    with db.read() as session:
        return auth.authenticate(session, secret, webhook_token=settings.auth.webhook_token)


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Anyone = Annotated[Principal, Depends(authenticated)]
