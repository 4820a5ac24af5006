"""GET /api/v1/reports/noise on the real store: counts that a reader can check by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from controlplane.config import load_settings
from controlplane.incidents.noise import NoiseJob
from controlplane.storage.models import DecisionRow, IncidentRow, ReportRow
from tests.factories import WEBHOOK_TOKEN, WEBHOOK_URL, alert, bearer, notification

pytestmark = pytest.mark.integration


def post(client, fingerprint, service, group, *, status="firing", starts="2026-11-21T01:00:00Z"):
    body = notification(
        [alert(fingerprint, service=service, status=status, starts=starts)], f"{group}-{status}"
    )
    body["groupKey"] = group
    answer = client.post(WEBHOOK_URL, json=body, headers=bearer(WEBHOOK_TOKEN))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_noise_report_counts_what_people_ignore_and_what_flaps(client, db, tokens):
    operator = bearer(tokens["operator"])
    # Two incidents of AlertA, each resolved by its own alert, never touched: noise.
    for n in range(2):
        post(client, "A", "search", f"a{n}", starts=f"2026-11-21T0{n}:00:00Z")
        post(client, "A", "search", f"a{n}", status="resolved", starts=f"2026-11-21T0{n}:00:00Z")
    # AlertB: acknowledged and resolved by a person.
    opened = post(client, "B", "checkout", "b")["opened"][0]
    client.post(f"/api/v1/incidents/{opened}/ack", json={}, headers=operator)
    client.post(f"/api/v1/incidents/{opened}/resolve", json={}, headers=operator)
    # AlertC flaps: fires, resolves, fires again; then an automated fix before it resolves.
    flapping = post(client, "C", "payments", "c")["opened"][0]
    post(client, "C", "payments", "c", status="resolved")
    post(client, "C", "payments", "c", starts="2026-11-21T03:00:00Z")
    now = datetime.now(UTC)
    with db.write() as session:
        session.add(
            DecisionRow(
                incident_id=flapping,
                policy="payments-restart",
                policy_version="v1",
                mode="auto",
                action="rollout_restart",
                target="Deployment/shop/payments",
                params={},
                status="succeeded",
                reason="verified",
                checks=[],
                finished_at=now,
            )
        )
    post(client, "C", "payments", "c", status="resolved", starts="2026-11-21T03:00:00Z")

    answer = client.get("/api/v1/reports/noise", headers=bearer(tokens["viewer"]))
    assert answer.status_code == 200, answer.text
    noise = answer.json()
    assert noise["incidents"] == 4
    assert noise["alerts"] == 5  # A twice, B once, C's two episodes
    assert noise["alerts_per_incident"]["max"] == 2
    assert noise["never_acted_on"] == [{"alert": "AlertA", "incidents": 2}]
    assert noise["flapping"] == [{"incident_id": flapping, "title": "AlertC", "reopened": 1}]
    assert noise["time_to_acknowledge_seconds"]["count"] == 1
    assert noise["time_to_resolve_seconds"]["count"] == 4
    assert noise["automation_share"] == {"resolved": 4, "after_an_automated_fix": 1, "share": 0.25}
    weeks = noise["incidents_per_service_per_week"]
    assert sum(weeks["search"].values()) == 2
    with db.read() as session:
        monday = session.scalars(select(IncidentRow.opened_at)).first()
    assert list(weeks["checkout"]) == [
        (monday - timedelta(days=monday.weekday())).date().isoformat()
    ]

    empty = client.get(
        "/api/v1/reports/noise?until=2020-01-01T00:00:00Z", headers=bearer(tokens["viewer"])
    ).json()
    assert empty["incidents"] == 0
    assert empty["alerts_per_incident"]["median"] is None
    bad = client.get(
        "/api/v1/reports/noise?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z",
        headers=bearer(tokens["viewer"]),
    )
    assert bad.status_code == 422
    assert "since" in bad.text


def test_the_weekly_noise_report_is_produced_once_per_slot_and_rendered(
    client, db, settings, tokens
):
    """Two workers' schedules reach Monday 07:00 together: one report for the slot, holding
    the week's figures, its Markdown tables and an HTML page with the weekly chart; listed
    under kind noise and not among the capacity reports."""
    post(client, "A", "search", "a0", starts="2026-11-30T01:00:00Z")
    post(client, "A", "search", "a0", status="resolved", starts="2026-11-30T01:00:00Z")
    due = datetime.now(UTC) + timedelta(minutes=1)
    config = load_settings(database={"url": settings.database.url}, noise={"schedule": "0 7 * * 1"})
    jobs = [NoiseJob(config, db, clock=lambda: due) for _ in range(2)]
    assert jobs[0].next_run(datetime(2026, 12, 1, tzinfo=UTC)) == datetime(
        2026, 12, 7, 7, tzinfo=UTC
    )
    made = [job.run_scheduled(due) for job in jobs]
    assert len([m for m in made if m is not None]) == 1
    with db.read() as session:
        (row,) = session.scalars(select(ReportRow)).all()
    assert (row.kind, row.status, row.signals, row.at_risk) == ("noise", "done", 1, 1)
    assert row.data["never_acted_on"] == [{"alert": "AlertA", "incidents": 1}]
    assert "| AlertA | 1 |" in row.markdown
    assert "<img alt='incidents per service per week'" in row.html
    listed = client.get("/api/v1/reports?kind=noise", headers=bearer(WEBHOOK_TOKEN))
    assert listed.status_code == 403  # the webhook token reads nothing
    viewer = bearer(tokens["viewer"])
    assert client.get("/api/v1/reports?kind=noise", headers=viewer).json()["count"] == 1
    assert client.get("/api/v1/reports?kind=capacity", headers=viewer).json()["count"] == 0
