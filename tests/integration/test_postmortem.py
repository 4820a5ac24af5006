"""A postmortem draft of a resolved incident from the API: its facts, timeline, evidence
chart, hints and what automation did, with the sections people fill; Markdown and HTML."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.storage.models import DecisionRow, EvidenceRow
from tests.factories import WEBHOOK_TOKEN, WEBHOOK_URL, alert, bearer, notification

pytestmark = pytest.mark.integration


@pytest.fixture
def resolved(client, db, tokens) -> int:
    body = notification([alert("pm1", service="checkout", severity="critical")], "g-pm")
    answer = client.post(WEBHOOK_URL, json=body, headers=bearer(WEBHOOK_TOKEN))
    assert answer.status_code == 200, answer.text
    incident_id = answer.json()["opened"][0]
    onset = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    points = [
        {"at": (onset + timedelta(minutes=m - 30)).isoformat(), "value": 0.2 + (m > 30),
         "score": 0.95 if m > 30 else 0.1}
        for m in range(60)
    ]  # fmt: skip
    with db.write() as session:
        session.add(
            EvidenceRow(
                incident_id=incident_id,
                signal="checkout-latency",
                service="checkout",
                onset_at=onset,
                peak_score=0.97,
                data={"query": 'latency{service="checkout"}', "points": points},
            )
        )
        session.add(
            DecisionRow(
                incident_id=incident_id,
                policy="checkout-scale",
                policy_version="v1",
                mode="approval",
                action="scale_deployment",
                target="Deployment/shop/checkout",
                params={},
                status="succeeded",
                reason="verified: PromQL holds",
                checks=[],
                plan={"summary": "scale shop/checkout 3 -> 5"},
                reviewed_by="alice",
                reviewed_at=onset + timedelta(minutes=5),
                review_comment="latency is load",
                outcome={
                    "execute": {
                        "ok": True,
                        "message": "scaled to 5",
                        "started_at": (onset + timedelta(minutes=6)).isoformat(),
                    },
                    "verify": {
                        "ok": True,
                        "message": "PromQL holds",
                        "started_at": (onset + timedelta(minutes=7)).isoformat(),
                    },
                },
            )
        )
    operator = bearer(tokens["operator"])
    early = client.get(f"/api/v1/incidents/{incident_id}/postmortem", headers=operator)
    assert early.status_code == 409  # not while it is open
    assert "drafted once it is resolved" in early.json()["detail"]
    client.post(f"/api/v1/incidents/{incident_id}/ack", json={"comment": "on it"}, headers=operator)
    done = client.post(
        f"/api/v1/incidents/{incident_id}/resolve", json={"comment": "scaled"}, headers=operator
    )
    assert done.status_code == 200
    return incident_id


def test_the_markdown_draft_holds_the_record_and_blanks_to_fill(client, tokens, resolved):
    answer = client.get(
        f"/api/v1/incidents/{resolved}/postmortem", headers=bearer(tokens["viewer"])
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/markdown")
    assert f'filename="postmortem-incident-{resolved}.md"' in answer.headers["content-disposition"]
    text = answer.text
    for heading in (
        "## Summary",
        "## Impact",
        "## Timeline (UTC)",
        "## Evidence",
        "## What automation did",
        "## What went well",
        "## Action items",
    ):
        assert heading in text
    assert "| Acknowledged |" in text
    assert "by test-operator" in text
    assert "**acknowledged** (test-operator): Acknowledged by test-operator: on it" in text
    assert "**checkout-scale** (scale_deployment `Deployment/shop/checkout`" in text
    assert "reviewed by alice" in text
    assert "verify (2026-11-21 01:07:00): ok: PromQL holds" in text
    assert text.count("_To fill in._") >= 3
    (chart,) = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    assert base64.b64decode(chart).startswith(b"\x89PNG")


def test_the_html_draft_is_one_page(client, tokens, resolved):
    answer = client.get(
        f"/api/v1/incidents/{resolved}/postmortem?format=html", headers=bearer(tokens["viewer"])
    )
    assert answer.status_code == 200
    page = answer.text
    assert page.startswith("<!doctype html>")
    assert "<h2>Timeline (UTC)</h2>" in page
    assert '<img src="data:image/png;base64,' in page
    assert "<table>" in page
    bad = client.get(
        f"/api/v1/incidents/{resolved}/postmortem?format=pdf", headers=bearer(tokens["viewer"])
    )
    assert bad.status_code == 422
