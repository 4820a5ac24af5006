"""API tokens: creation, revocation and authentication.

A token is `aiops_` + 256 random bits; only its SHA-256 is stored. A slow password hash would
add nothing for secrets this long, and a fast lookup keeps webhook intake cheap. The webhook
token from settings (`auth.webhook_token`) authenticates as the `webhook` role, which may
deliver notifications and nothing else.

`TokenCache` keeps known-good tokens for a few seconds so that webhook intake does not read
the token table on every request; a revocation through this process clears it at once, one
through another replica takes effect within the cache's TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from datetime import UTC, datetime

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.domain.errors import ConflictError, NotFoundError
from controlplane.domain.models import Principal, Role
from controlplane.storage import audit
from controlplane.storage.models import ApiTokenRow

TOKEN_PREFIX = "aiops_"
SETTINGS_WEBHOOK_NAME = "webhook (settings)"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, name: str, role: Role, *, actor: str) -> tuple[ApiTokenRow, str]:
    """Store a new token and return it with its secret, which is shown once and never again."""
    if not _NAME.match(name):
        raise ValueError(
            f"token name must be 1-128 letters, digits or _.@- (starting with a letter or "
            f"digit), got {name!r}"
        )
    if session.scalar(select(ApiTokenRow.api_token_id).where(ApiTokenRow.name == name)):
        raise ConflictError(f"a token named {name!r} already exists")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiTokenRow(name=name, role=role, token_sha256=digest(secret), created_by=actor)
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="token.created",
        target_type="api_token",
        target_id=row.api_token_id,
        details={"name": name, "role": role.value},
    )
    return row, secret


def revoke_token(session: Session, name: str, *, actor: str) -> ApiTokenRow:
    row = session.scalars(select(ApiTokenRow).where(ApiTokenRow.name == name)).one_or_none()
    if row is None:
        raise NotFoundError(f"no token named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        audit.record(
            session,
            actor=actor,
            action="token.revoked",
            target_type="api_token",
            target_id=row.api_token_id,
            details={"name": name},
        )
    return row


def list_tokens(session: Session) -> list[ApiTokenRow]:
    return list(session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.api_token_id)))


def authenticate(
    session: Session, secret: str, *, webhook_token: SecretStr | None = None
) -> Principal | None:
    """The principal a bearer secret stands for, or None when it is unknown or revoked."""
    if webhook_token is not None and hmac.compare_digest(
        secret.encode(), webhook_token.get_secret_value().encode()
    ):
        return Principal(SETTINGS_WEBHOOK_NAME, Role.WEBHOOK)
    row = session.execute(
        select(ApiTokenRow.name, ApiTokenRow.role).where(
            ApiTokenRow.token_sha256 == digest(secret), ApiTokenRow.revoked_at.is_(None)
        )
    ).one_or_none()
    return Principal(row.name, Role(row.role)) if row else None


class TokenCache:
    """Principals of recently seen valid secrets, by digest, for `ttl` seconds."""

    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def peek(self, secret: str) -> Principal | None:
        """The cached principal for this secret, if it is still fresh."""
        cached = self._entries.get(digest(secret))
        return cached[0] if cached and cached[1] > time.monotonic() else None

    def remember(self, secret: str, principal: Principal) -> None:
        """Cache a valid secret; unknown secrets are never cached (no memory to exhaust)."""
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest(secret)] = (principal, time.monotonic() + self.ttl)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
