"""Loopback stand-ins for the on-call services that cannot run here (Slack, Teams,
PagerDuty, Grafana's annotation API): one HTTP server that checks each request the way the
real service does (required fields, limits, enumerations, credentials) and answers as it does,
so a payload the real service would refuse fails here too. Used by the tests and the demo.

Paths: `/slack/webhook/...`, `/slack/api/chat.postMessage`, `/teams/...`,
`/pagerduty/v2/enqueue`, `/pagerduty/v2/change/enqueue`, `/grafana/api/annotations`, and any
other path (a generic webhook or CloudEvents sink) accepted as it comes.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from controlplane.testing.kube import serve_in_thread, stop_serving

SLACK_TOKEN = "xoxb-loopback-token"
GRAFANA_TOKEN = "glsa_loopback_token"
PD_SEVERITIES = {"critical", "error", "warning", "info"}
PD_ACTIONS = {"trigger", "acknowledge", "resolve"}


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class OnCallServices:
    """Records every request; `fail(prefix, status, times)` makes the next requests under a
    path prefix fail with `status` (a 5xx outage, a 4xx refusal)."""

    requests: list[Request] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    _failures: dict[str, list[int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> OnCallServices:
        handler = type("Handler", (_Handler,), {"services": self})
        self._server: ThreadingHTTPServer
        self._server, self.url = serve_in_thread(handler)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_serving(self._server)

    def fail(self, prefix: str, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures.setdefault(prefix, []).extend([status] * times)

    def under(self, prefix: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def _injected(self, path: str) -> int | None:
        with self._lock:
            for prefix, codes in self._failures.items():
                if path.startswith(prefix) and codes:
                    return codes.pop(0)
        return None


class _Handler(BaseHTTPRequestHandler):
    services: OnCallServices
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        return

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
        with self.services._lock:
            self.services.requests.append(request)
        injected = self.services._injected(self.path)
        if injected is not None:
            self._answer(injected, {"error": "injected failure"})
            return
        try:
            status, body = _route(request)
        except _RefusedError as exc:
            self.services.refused.append((self.path, exc.reason))
            status, body = exc.status, exc.body
        self._answer(status, body)

    def _answer(self, status: int, body: Any) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        kind = "text/plain" if isinstance(body, str) else "application/json"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _RefusedError(Exception):
    def __init__(self, status: int, reason: str, body: Any) -> None:
        super().__init__(reason)
        self.status, self.reason, self.body = status, reason, body


def _route(request: Request) -> tuple[int, Any]:
    path = request.path
    if path.startswith("/slack/webhook/"):
        _slack_message(request.json, lambda why: _RefusedError(400, why, "invalid_blocks"))
        return 200, "ok"
    if path == "/slack/api/chat.postMessage":
        return 200, _slack_api(request)
    if path.startswith("/teams/"):
        _teams(request.json)
        return 202, ""
    if path == "/pagerduty/v2/enqueue":
        return 202, _pagerduty_alert(request.json)
    if path == "/pagerduty/v2/change/enqueue":
        return 202, _pagerduty_change(request.json)
    if path == "/grafana/api/annotations":
        return 200, _grafana(request)
    return 200, ""


def _require(ok: bool, status: int, why: str, body: Any = None) -> None:
    if not ok:
        raise _RefusedError(status, why, body if body is not None else {"message": why})


def _slack_message(body: dict[str, Any], refuse: Any) -> None:
    """Slack's Block Kit limits (api.slack.com/reference/block-kit)."""
    if not body.get("text") and not body.get("blocks"):
        raise refuse("no text or blocks")
    blocks = body.get("blocks") or []
    if len(blocks) > 50:
        raise refuse("more than 50 blocks")
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            text = block["text"]
            if text.get("type") != "plain_text" or len(text["text"]) > 150:
                raise refuse("header: plain_text of at most 150 characters")
        elif kind == "section":
            if len(block.get("text", {}).get("text", "")) > 3000:
                raise refuse("section text over 3000 characters")
            fields = block.get("fields", [])
            if len(fields) > 10 or any(len(f["text"]) > 2000 for f in fields):
                raise refuse("section: at most 10 fields of 2000 characters")
        elif kind == "actions":
            elements = block.get("elements", [])
            if not 0 < len(elements) <= 25:
                raise refuse("actions: 1 to 25 elements")
            for button in elements:
                if button.get("type") != "button" or len(button["text"]["text"]) > 75:
                    raise refuse("button: text of at most 75 characters")
                if len(button.get("url", "")) > 3000 or len(button.get("action_id", "")) > 255:
                    raise refuse("button: url at most 3000, action_id at most 255 characters")
                if button.get("style") not in (None, "primary", "danger"):
                    raise refuse("button: style is primary or danger")
        elif kind != "context":
            raise refuse(f"unknown block type {kind!r}")


def _slack_api(request: Request) -> dict[str, Any]:
    if request.headers.get("authorization") != f"Bearer {SLACK_TOKEN}":
        return {"ok": False, "error": "invalid_auth"}
    body = request.json
    if not body.get("channel"):
        return {"ok": False, "error": "channel_not_found"}
    try:
        _slack_message(body, lambda why: _RefusedError(200, why, {"ok": False, "error": why}))
    except _RefusedError as exc:
        return {"ok": False, "error": "invalid_blocks", "errors": [exc.reason]}
    return {"ok": True, "channel": "C0LOOPBACK", "ts": "1733330000.000100", "message": body}


def _teams(body: dict[str, Any]) -> None:
    _require(body.get("type") == "message", 400, "type must be 'message'")
    (attachment,) = body.get("attachments") or [None]
    _require(attachment is not None, 400, "one attachment")
    _require(
        attachment.get("contentType") == "application/vnd.microsoft.card.adaptive",
        400,
        "contentType must be an Adaptive Card",
    )
    card = attachment["content"]
    _require(card.get("type") == "AdaptiveCard" and bool(card.get("version")), 400, "card type")
    _require(isinstance(card.get("body"), list) and bool(card["body"]), 400, "card body")
    for action in card.get("actions", []):
        _require(action.get("type") == "Action.OpenUrl" and bool(action.get("url")), 400, "action")


def _pd_invalid(errors: list[str]) -> _RefusedError:
    body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
    return _RefusedError(400, "; ".join(errors), body)


def _pagerduty_alert(body: dict[str, Any]) -> dict[str, Any]:
    """Events API v2 (developer.pagerduty.com/docs/events-api-v2/trigger-events)."""
    errors = []
    if not isinstance(body.get("routing_key"), str) or len(body["routing_key"]) != 32:
        errors.append("'routing_key' must be a 32 character integration key")
    action = body.get("event_action")
    if action not in PD_ACTIONS:
        errors.append("'event_action' is invalid")
    dedup = body.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append("'dedup_key' is required to acknowledge or resolve")
    if action == "trigger":
        payload = body.get("payload") or {}
        if not payload.get("summary") or len(payload["summary"]) > 1024:
            errors.append("'payload.summary' is required, at most 1024 characters")
        if not payload.get("source"):
            errors.append("'payload.source' is required")
        if payload.get("severity") not in PD_SEVERITIES:
            errors.append("'payload.severity' must be critical, error, warning or info")
        for key in ("component", "group", "class"):
            if key in payload and not isinstance(payload[key], str):
                errors.append(f"'payload.{key}' must be a string")
    for link in body.get("links", []):
        if not link.get("href"):
            errors.append("'links.href' is required")
    if errors:
        raise _pd_invalid(errors)
    return {"status": "success", "message": "Event processed", "dedup_key": dedup or "generated"}


def _pagerduty_change(body: dict[str, Any]) -> dict[str, Any]:
    """Change Events (developer.pagerduty.com/docs/events-api-v2/send-change-events)."""
    errors = []
    if not isinstance(body.get("routing_key"), str) or len(body["routing_key"]) != 32:
        errors.append("'routing_key' must be a 32 character integration key")
    payload = body.get("payload") or {}
    if not payload.get("summary") or len(payload["summary"]) > 1024:
        errors.append("'payload.summary' is required, at most 1024 characters")
    if errors:
        raise _pd_invalid(errors)
    return {"status": "success", "message": "Change event processed"}


_annotation_ids = iter(range(1, 1_000_000))


def _grafana(request: Request) -> dict[str, Any]:
    """POST /api/annotations (grafana.com/docs/grafana/latest/developers/http_api/annotations)."""
    _require(
        request.headers.get("authorization") == f"Bearer {GRAFANA_TOKEN}",
        401,
        "Unauthorized",
        {"message": "invalid API key"},
    )
    body = request.json
    _require(isinstance(body.get("text"), str) and bool(body["text"]), 400, "text is required")
    _require(isinstance(body.get("time"), int), 400, "time must be epoch milliseconds")
    _require(all(isinstance(t, str) for t in body.get("tags", [])), 400, "tags are strings")
    return {"message": "Annotation added", "id": next(_annotation_ids)}
