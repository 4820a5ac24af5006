"""Notify: post a message to a webhook (Slack-compatible body: `{"text": ...}`)."""

from __future__ import annotations

import httpx

from controlplane.domain.errors import PermanentError, TemporaryError
from remediations.base import Action, Outcome, Plan


class Notify(Action):
    """Changes nothing it could undo: planning shows the message, execution sends it once
    (dry run: not at all), verification is the receiver's 2xx."""

    name = "notify"

    def __init__(self, *, url: str, text: str, timeout_seconds: float = 10.0) -> None:
        self.url, self.text, self.timeout = url, text, timeout_seconds

    def plan(self) -> Plan:
        return Plan(
            self.name,
            {"kind": "Webhook", "url": self.url},
            {"sent": False},
            {"sent": True, "body": {"text": self.text}},
            f"post to {self.url}: {self.text[:120]}",
        )

    def execute(self, plan: Plan, *, dry_run: bool) -> Outcome:
        if dry_run:
            return Outcome(True, "dry run: not sent", plan.after)
        try:
            response = httpx.post(self.url, json={"text": self.text}, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise TemporaryError(f"notify: {self.url} unreachable: {exc}") from None
        if response.status_code >= 500:
            raise TemporaryError(f"notify: {self.url} answered {response.status_code}")
        if response.status_code >= 400:
            raise PermanentError(
                f"notify: {self.url} refused: {response.status_code} {response.text[:200]}"
            )
        return Outcome(True, f"sent ({response.status_code})", {"status": response.status_code})

    def verify(self, plan: Plan, *, timeout_seconds: float) -> Outcome:
        return Outcome(True, "the receiver accepted the message")

    def rollback(self, plan: Plan) -> Outcome:
        return Outcome(True, "a sent message cannot be unsent")
