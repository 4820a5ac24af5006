"""Capacity reports against a real Prometheus (Debian package) with two weeks of backfilled
history: the report renders with plots, is stored with its history and served by the API; a
forecast crossing its limit within the lead time opens a capacity-risk incident with the
forecast as evidence, and resolves once the risk is gone; scheduled runs happen once per slot
and on the cron schedule; `aiops report capacity` writes the files."""

from __future__ import annotations

import asyncio
import html
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from controlplane.api import create_app
from controlplane.capacity.job import CapacityJob
from controlplane.cli import app as cli
from controlplane.config import Settings, load_settings
from controlplane.storage.models import ReportRow
from controlplane.testing.servers import Prometheus, openmetrics
from tests.factories import bearer

pytestmark = pytest.mark.integration

DAYS = 14
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
CPU_LIMIT = 3.9


def _history() -> str:
    """checkout CPU grows 0.1 core a day with a daily cycle (crosses 3.9 cores in ~2 days);
    payments requests are steady, far below their limit."""
    rng = np.random.default_rng(3)
    n = DAYS * 24 * 12  # 5-minute samples
    t = np.arange(n)
    days = t / (24 * 12)
    start = END - timedelta(minutes=5 * (n - 1))
    stamps = [(start + timedelta(minutes=5 * int(i))).timestamp() for i in t]
    daily = np.sin(2 * np.pi * days)
    cpu = 2.0 + 0.1 * days + 0.4 * daily + rng.normal(0, 0.03, n)
    requests = 100 + 30 * daily + rng.normal(0, 2, n)
    return openmetrics(
        {
            ("demo_cpu_cores", "checkout"): cpu,
            ("demo_requests_per_second", "payments"): requests,
        },
        stamps,
    )


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with Prometheus(tmp_path_factory.mktemp("prometheus"), history=_history()) as server:
        yield server


def _capacity(cpu_limit: float = CPU_LIMIT, schedule: str = "") -> dict:
    return {
        "schedule": schedule,
        "history_seconds": DAYS * 86_400,
        "horizon_seconds": 7 * 86_400,
        "lead_seconds": 3 * 86_400,
        "step_seconds": 3600,
        "signals": [
            {
                "name": "checkout-cpu",
                "service": "checkout",
                "resource": "cpu",
                "query": 'demo_cpu_cores{service="checkout"}',
                "limit": cpu_limit,
                "unit": "cores",
            },
            {
                "name": "payments-requests",
                "service": "payments",
                "resource": "requests",
                "query": 'demo_requests_per_second{service="payments"}',
                "limit_query": "vector(1000)",
                "unit": "req/s",
                "replicas": {"capacity_per_replica": 50, "current": 3, "min": 2, "max": 20},
            },
            {"name": "broken", "service": "payments", "query": "sum((", "limit": 1},
        ],
    }


def _config(settings: Settings, prometheus: Prometheus, **capacity) -> Settings:
    return load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        auth={"webhook_token": "unused-webhook-token"},
        prometheus={"url": prometheus.url},
        capacity=_capacity(**capacity),
    )


def test_report_risk_incident_and_resolution(prometheus, settings, db, client, tokens):
    config = _config(settings, prometheus)
    job = CapacityJob(config, db, clock=lambda: END, workers=1)
    report_id = job.run("schedule", "scheduler", scheduled_for=END)
    assert report_id is not None
    assert job.run("schedule", "scheduler", scheduled_for=END) is None  # slot already claimed

    headers = bearer(tokens["viewer"])
    listed = client.get("/api/v1/reports", headers=headers).json()
    assert listed["count"] == 1
    (meta,) = listed["data"]
    assert meta["status"] == "done"
    assert (meta["signals"], meta["at_risk"]) == (3, 1)

    document = client.get(f"/api/v1/reports/{report_id}", headers=headers).json()["document"]
    by_name = {o["signal"]: o for o in document["outlooks"]}
    cpu = by_name["checkout-cpu"]
    assert cpu["crossing"]["at_risk"] is True
    assert cpu["crossing"]["probability"] > 0.5
    mean_at = datetime.fromisoformat(cpu["crossing"]["mean_at"])
    risk_at = datetime.fromisoformat(cpu["crossing"]["risk_at"])
    assert END < risk_at <= mean_at < END + timedelta(days=4)
    served = cpu["model"]
    assert served["model"] in served["candidates"] or set(served["weights"]) <= set(
        served["candidates"]
    )
    assert served["backtest"]["mase"] > 0
    # The forecast's own accuracy travels with it: against seasonal naive, and its bands.
    assert served["backtest"]["relative_mase"] == pytest.approx(
        served["backtest"]["mase"] / served["backtest"]["naive_mase"], rel=1e-3
    )
    assert set(served["backtest"]["coverage"]) == {"80", "95"}
    assert served["accuracy"].startswith("backtest error ")
    assert len(cpu["forecast"]["mean"]) == 7 * 24
    payments = by_name["payments-requests"]
    assert payments["limit"] == 1000
    assert payments["crossing"]["at_risk"] is False
    assert payments["replicas"]["current"] == 3
    assert payments["replicas"]["needed"] == 4  # ceil(~135 req/s peak / (50 * 0.7))
    assert "refused query" in by_name["broken"]["error"]

    page = client.get(f"/api/v1/reports/{report_id}", params={"format": "html"}, headers=headers)
    assert page.headers["content-type"].startswith("text/html")
    assert len(re.findall(r"src='data:image/png;base64,", page.text)) == 2
    assert "backtest MASE" in page.text
    assert html.escape(served["accuracy"]) in page.text
    assert "checkout / checkout-cpu" in page.text
    markdown = client.get(
        f"/api/v1/reports/{report_id}", params={"format": "markdown"}, headers=headers
    )
    assert "| checkout | checkout-cpu |" in markdown.text

    (incident,) = client.get(
        "/api/v1/incidents", params={"service": "checkout"}, headers=headers
    ).json()["data"]
    assert incident["source"] == "forecast"
    assert incident["title"].startswith("CapacityRisk: checkout cpu may reach its limit 3.9 cores")
    detail = client.get(f"/api/v1/incidents/{incident['incident_id']}", headers=headers).json()
    (evidence,) = detail["evidence"]
    assert evidence["kind"] == "capacity_forecast"
    assert evidence["data"]["report_id"] == report_id
    assert evidence["data"]["crossing"]["limit"] == CPU_LIMIT
    assert detail["root_cause_hints"] == []  # a forecast is not an anomaly
    assert (
        client.get("/api/v1/incidents", params={"service": "payments"}, headers=headers).json()[
            "count"
        ]
        == 0
    )

    # A day later the limit was raised: the risk is gone and the incident resolves.
    later = END + timedelta(days=1)
    raised = _config(settings, prometheus, cpu_limit=40.0)
    CapacityJob(raised, db, clock=lambda: later, workers=1).run("api", "test-operator")
    status = client.get(f"/api/v1/incidents/{incident['incident_id']}", headers=headers).json()
    assert status["status"] == "resolved"


def test_generate_now_through_the_api(prometheus, settings, db, tokens):
    config = _config(settings, prometheus)
    with TestClient(create_app(config, db)) as api:
        refused = api.post("/api/v1/reports", headers=bearer(tokens["viewer"]))
        assert refused.status_code == 403
        created = api.post("/api/v1/reports", headers=bearer(tokens["operator"]))
        assert created.status_code == 202
        body = created.json()
        assert (body["trigger"], body["requested_by"]) == ("api", "test-operator")
        # TestClient runs background tasks before returning: the report is finished.
        done = api.get(f"/api/v1/reports/{body['report_id']}", headers=bearer(tokens["viewer"]))
        assert done.json()["status"] == "done"
        missing = api.get("/api/v1/reports/999999", headers=bearer(tokens["viewer"]))
        assert missing.status_code == 404


def test_the_schedule_produces_reports(prometheus, settings, db):
    """A cron schedule of every minute, on a clock one second before the minute turns."""
    real = datetime.now(UTC)
    turn = real.replace(second=0, microsecond=0) + timedelta(minutes=1)
    offset = (END.replace(minute=59) + timedelta(seconds=59)) - real
    config = _config(settings, prometheus, schedule="* * * * *")
    job = CapacityJob(config, db, clock=lambda: datetime.now(UTC) + offset, workers=1)
    assert job.next_run(turn) == turn + timedelta(minutes=1)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(job.run_forever(stop))
        for _ in range(600):
            with db.read() as session:
                if session.query(ReportRow).filter_by(status="done").count():
                    break
            await asyncio.sleep(0.1)
        stop.set()
        await loop

    asyncio.run(run())
    with db.read() as session:
        (row,) = session.query(ReportRow).all()
        assert (row.trigger, row.status) == ("schedule", "done")
        assert row.scheduled_for == END + timedelta(hours=1)


def test_cli_report_writes_files(prometheus, tmp_path: Path):
    config = {
        "database": {"url": f"sqlite:///{tmp_path / 'cli.db'}"},
        "prometheus": {"url": prometheus.url},
        "capacity": _capacity(),
    }
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "reports"
    result = CliRunner().invoke(cli, ["report", "capacity", "--config", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "report 1: 3 signals, 1 at risk, 1 without a forecast" in result.output
    assert "broken: " in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "report-1.html",
        "report-1.json",
        "report-1.md",
    ]
    assert json.loads((out / "report-1.json").read_text())["at_risk"] == 1
