"""A small typed client for the control plane API, used by every console page.

Errors come back as `ApiError` with a message fit to show a person: the API's own `detail`
when it sent one, or what went wrong on the way (API down, timeout). A 401 (the token was
revoked or is unknown) is `SessionEndedError` instead, which pages do not catch: the console signs
the user out rather than showing every widget's error.
"""

from __future__ import annotations

from typing import Any

import httpx

from controlplane.config import load_settings


class ApiError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def api_url() -> str:
    """`console.api_url` (the launcher sets AIOPS_CONSOLE__API_URL), else the API's address."""
    return load_settings().console_api_url


class SessionEndedError(Exception):
    """The API no longer accepts this token: the console's sign-in is over."""


class ApiClient:
    def __init__(self, token: str, base_url: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = (base_url or api_url()).rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout

    def whoami(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/whoami")

    def incidents(
        self,
        *,
        status: list[str] | None = None,
        severity: list[str] | None = None,
        service: str | None = None,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
        order: str = "newest",
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset, "order": order}
        if text:
            params["q"] = text
        if status:
            params["status"] = status
        if severity:
            params["severity"] = severity
        if service:
            params["service"] = service
        return self._call("GET", "/api/v1/incidents", params=params)

    def incident(self, incident_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/incidents/{incident_id}")

    def acknowledge(self, incident_id: int, comment: str | None = None) -> dict[str, Any]:
        return self._call(
            "POST", f"/api/v1/incidents/{incident_id}/ack", json={"comment": comment or None}
        )

    def resolve(self, incident_id: int, comment: str | None = None) -> dict[str, Any]:
        return self._call(
            "POST", f"/api/v1/incidents/{incident_id}/resolve", json={"comment": comment or None}
        )

    def decisions(
        self, *, status: list[str] | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return self._call("GET", "/api/v1/decisions", params=params)

    def decision(self, decision_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/decisions/{decision_id}")

    def review(
        self, decision_id: int, *, approve: bool, comment: str, plan_digest: str
    ) -> dict[str, Any]:
        """Approve or reject the plan that was read (its digest): a decision planned again
        since is refused by the API, not approved unread."""
        verb = "approve" if approve else "reject"
        body = {"comment": comment, "plan_digest": plan_digest}
        return self._call("POST", f"/api/v1/actions/{decision_id}/{verb}", json=body)

    def replan(self, decision_id: int, comment: str) -> dict[str, Any]:
        return self._call(
            "POST", f"/api/v1/decisions/{decision_id}/replan", json={"comment": comment}
        )

    def automation(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/automation")

    def set_paused(self, paused: bool, reason: str) -> dict[str, Any]:
        path = "/api/v1/automation/pause" if paused else "/api/v1/automation/resume"
        return self._call("POST", path, json={"reason": reason})

    def overview(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/overview")

    def dependency_graph(self, minutes: int = 60) -> list[dict[str, Any]]:
        return self._list("/api/v1/traces/graph", params={"minutes": minutes})

    def reports(self, kind: str, *, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        params = {"kind": kind, "limit": limit, "offset": offset}
        return self._call("GET", "/api/v1/reports", params=params)

    def report(self, report_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/reports/{report_id}")

    def report_text(self, report_id: int, fmt: str) -> str:
        return self._text(f"/api/v1/reports/{report_id}", params={"format": fmt})

    def create_report(self) -> dict[str, Any]:
        return self._call("POST", "/api/v1/reports")

    def audit(self, *, limit: int = 100, offset: int = 0, **filters: Any) -> dict[str, Any]:
        params = {"limit": limit, "offset": offset, **{k: v for k, v in filters.items() if v}}
        return self._call("GET", "/api/v1/audit", params=params)

    def audit_export(self, **filters: Any) -> str:
        params = {k: v for k, v in filters.items() if v}
        return self._text("/api/v1/audit/export", params=params)

    def policies(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/policies")

    def runbooks(self) -> list[dict[str, Any]]:
        return self._list("/api/v1/runbooks")

    def runbook(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/runbooks/{name}")

    def backtest(self, since: str | None = None, until: str | None = None) -> dict[str, Any]:
        body = {k: v for k, v in {"since": since, "until": until}.items() if v}
        return self._call("POST", "/api/v1/policies/backtest", json=body)

    def cost(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/cost")

    def slos(self) -> list[dict[str, Any]]:
        return self._list("/api/v1/slos")

    def slo_budget(self, name: str, days: int) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/slos/{name}/budget", params={"days": days})

    def noise(self, *, since: str, until: str) -> dict[str, Any]:
        return self._call("GET", "/api/v1/reports/noise", params={"since": since, "until": until})

    def postmortem(self, incident_id: int, fmt: str = "markdown") -> str:
        """The postmortem draft of a resolved incident (Markdown or HTML)."""
        return self._text(f"/api/v1/incidents/{incident_id}/postmortem", params={"format": fmt})

    def silences(self, incident_id: int) -> list[dict[str, Any]]:
        """Alertmanager silences covering the incident (active or pending)."""
        return self._list(f"/api/v1/incidents/{incident_id}/silences")

    def silence(self, incident_id: int, minutes: float, comment: str) -> dict[str, Any]:
        body = {"minutes": minutes, "comment": comment}
        return self._call("POST", f"/api/v1/incidents/{incident_id}/silences", json=body)

    def expire_silence(self, silence_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/v1/silences/{silence_id}")

    def approval_link(self, link: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/approval-links/{link}")

    def review_link(self, link: str, *, approve: bool, comment: str) -> dict[str, Any]:
        """Approve or reject through a signed link: the plan the message showed, once."""
        body = {"approve": approve, "comment": comment}
        return self._call("POST", f"/api/v1/approval-links/{link}", json=body)

    def channels(self) -> list[dict[str, Any]]:
        return self._list("/api/v1/notifications/channels")

    def messages(self, *, status: str | None = None, limit: int = 50) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
        return self._call("GET", "/api/v1/notifications", params=params)

    def retry_message(self, message_id: int) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/notifications/{message_id}/retry")

    def windows(self, *, active: bool = False) -> list[dict[str, Any]]:
        return self._list("/api/v1/maintenance-windows", params={"active": active})

    def open_window(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/api/v1/maintenance-windows", json=body)

    def cancel_window(self, window_id: int, reason: str) -> dict[str, Any]:
        return self._call(
            "POST", f"/api/v1/maintenance-windows/{window_id}/cancel", json={"reason": reason}
        )

    def _list(self, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        body: Any = self._call("GET", path, **kwargs)
        return list(body)

    def _text(self, path: str, **kwargs: Any) -> str:
        return self._send("GET", path, **kwargs).text

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self._send(method, path, **kwargs).json()
        return body

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = httpx.request(
                method, self.base_url + path, headers=self._headers, timeout=self._timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            raise ApiError(f"The API at {self.base_url} cannot be reached ({exc}).") from None
        if response.is_success:
            return response
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if response.status_code == 401:
            raise SessionEndedError(f"{detail} (HTTP 401)")
        raise ApiError(f"{detail} (HTTP {response.status_code})", response.status_code)
