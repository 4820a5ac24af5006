"""Links out: signed one-click approval links, and graphs of an incident's evidence in
Prometheus and Grafana Explore.

An approval link carries no credential. It is `<payload>.<HMAC-SHA256>` over the decision,
the plan digest the message showed, an expiry and a nonce: it lets whoever holds it *see* that
one plan; approving still needs an operator signed in, approves only that digest (a plan made
again since is refused), and works once (the nonce is stored when used).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

from controlplane.domain.errors import ConflictError, InvalidInputError

_PURPOSE = b"aiops-approval-link/1."


@dataclass(frozen=True)
class ApprovalLink:
    decision_id: int
    plan_digest: str
    expires_at: datetime
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, body: str) -> str:
    return _b64(hmac.new(secret.encode(), _PURPOSE + body.encode(), hashlib.sha256).digest())


def sign(secret: str, decision_id: int, plan_digest: str, expires_at: datetime) -> str:
    payload = {
        "d": decision_id,
        "p": plan_digest,
        "e": int(expires_at.timestamp()),
        "n": secrets.token_urlsafe(12),
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{body}.{_mac(secret, body)}"


def verify(secret: str, token: str, now: datetime) -> ApprovalLink:
    """The link's content; InvalidInputError when it was not signed here (or was altered),
    ConflictError when it expired."""
    body, _, mac = token.partition(".")
    if not mac or not hmac.compare_digest(mac, _mac(secret, body)):
        raise InvalidInputError("link: not a valid approval link (altered, or not signed here)")
    try:
        data = json.loads(_unb64(body))
        link = ApprovalLink(
            int(data["d"]), str(data["p"]), datetime.fromtimestamp(data["e"], UTC), str(data["n"])
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidInputError("link: not a valid approval link (unreadable)") from None
    if link.expires_at <= now:
        raise ConflictError(
            f"link: this approval link expired at {link.expires_at.isoformat()}; "
            "open the approval from the console"
        )
    return link


def expiry(now: datetime, ttl_minutes: float) -> datetime:
    return now + timedelta(minutes=ttl_minutes)


def console_incident(console_url: str, incident_id: int) -> str:
    return f"{console_url}/incidents?{urlencode({'incident': incident_id})}"


def console_approval(console_url: str, decision_id: int, token: str | None) -> str:
    query = {"decision": decision_id, **({"link": token} if token else {})}
    return f"{console_url}/approvals?{urlencode(query)}"


def prometheus_graph(base_url: str, query: str, start: datetime, end: datetime) -> str:
    """Prometheus' own graph page for `query` from `start` to `end`."""
    seconds = max(60, int((end - start).total_seconds()))
    params = {
        "g0.expr": query,
        "g0.tab": "0",
        "g0.range_input": f"{seconds}s",
        "g0.end_input": end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
    return f"{base_url.rstrip('/')}/graph?{urlencode(params)}"


def grafana_explore(
    base_url: str, datasource: str, query: str, start: datetime, end: datetime
) -> str:
    """Grafana Explore with `query` on `datasource` over the range (the `schemaVersion=1`
    `panes` form of Grafana 10 and later)."""
    pane = {
        "datasource": datasource,
        "queries": [{"refId": "A", "expr": query, "datasource": {"uid": datasource}}],
        "range": {
            "from": str(int(start.timestamp() * 1000)),
            "to": str(int(end.timestamp() * 1000)),
        },
    }
    panes = quote(json.dumps({"a": pane}, separators=(",", ":")))
    return f"{base_url.rstrip('/')}/explore?schemaVersion=1&orgId=1&panes={panes}"
