"""Notify: post a message to a webhook (Slack-compatible body: `{"text": ...}`)."""

from __future__ import annotations

import uuid
from typing import Literal

import httpx
from pydantic import Field

from controlplane.domain.errors import PermanentError, TemporaryError
from remediations.base import Action, ActionParams, Outcome, Plan, TargetRef, url_identity

#: Sent with every post; the same plan always carries the same key, so a receiver that
#: deduplicates (or an audit reader) can tell a retry from a second message.
IDEMPOTENCY_HEADER = "Idempotency-Key"


class NotifyParams(ActionParams):
    type: Literal["notify"]
    url: str = Field(..., description="Webhook URL (Slack-compatible body).")
    text: str = Field("{summary}", description="Message; placeholders from the incident.")


class Notify(Action[NotifyParams]):
    """Changes nothing it could undo: planning shows the message, execution sends it (dry
    run: not at all) with the plan's idempotency key, verification is the receiver's 2xx."""

    name = "notify"
    Params = NotifyParams
    reversible = False
    timeout_seconds = 10.0

    @classmethod
    def target(cls, params: NotifyParams) -> TargetRef:
        return TargetRef("Webhook", url_identity(params.url))

    def plan(self) -> Plan:
        target = self.target(self.params)
        return Plan(
            self.name,
            target.as_dict(),
            {"sent": False},
            {"sent": True, "body": {"text": self.params.text}},
            f"post to {target.name}: {self.params.text[:120]}",
            details={"idempotency_key": uuid.uuid4().hex},
        )

    def execute(self, plan: Plan, *, dry_run: bool) -> Outcome:
        if dry_run:
            return Outcome(True, "dry run: not sent", plan.after)
        where = self.target(self.params).name
        headers = {IDEMPOTENCY_HEADER: str(plan.details.get("idempotency_key", ""))}
        try:
            response = httpx.post(
                self.params.url,
                json=plan.after["body"],
                headers=headers,
                timeout=self.timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise TemporaryError(f"notify: {where} unreachable: {exc}") from None
        if response.status_code >= 500:
            raise TemporaryError(f"notify: {where} answered {response.status_code}")
        if response.status_code >= 400:
            raise PermanentError(
                f"notify: {where} refused: {response.status_code} {response.text[:200]}"
            )
        return Outcome(True, f"sent ({response.status_code})", {"status": response.status_code})

    def verify(self, plan: Plan, *, timeout_seconds: float) -> Outcome:
        return Outcome(True, "the receiver accepted the message")

    def rollback(self, plan: Plan) -> Outcome:
        return Outcome(True, "a sent message cannot be unsent")
