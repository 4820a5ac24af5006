"""A small typed client for the control plane API, used by every console page.

Errors come back as `ApiError` with a message fit to show a person: the API's own `detail`
when it sent one, or what went wrong on the way (API down, timeout).
"""

from __future__ import annotations

import os
from typing import Any

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8080"


class ApiError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def api_url() -> str:
    return os.environ.get("AIOPS_CONSOLE__API_URL") or DEFAULT_API_URL


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
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
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

    def review(self, decision_id: int, *, approve: bool, comment: str) -> dict[str, Any]:
        verb = "approve" if approve else "reject"
        return self._call(
            "POST", f"/api/v1/actions/{decision_id}/{verb}", json={"comment": comment}
        )

    def automation(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/automation")

    def set_paused(self, paused: bool, reason: str | None = None) -> dict[str, Any]:
        path = "/api/v1/automation/pause" if paused else "/api/v1/automation/resume"
        return self._call("POST", path, json={"reason": reason or None})

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = httpx.request(
                method, self.base_url + path, headers=self._headers, timeout=self._timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            raise ApiError(f"The API at {self.base_url} cannot be reached ({exc}).") from None
        if response.is_success:
            body: dict[str, Any] = response.json()
            return body
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ApiError(f"{detail} (HTTP {response.status_code})", response.status_code)
