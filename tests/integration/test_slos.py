"""SLOs: OpenSLO v1 import (both apiVersions, ratio and threshold indicators, rolling and
calendar windows, errors that name the file, the SLO and the key), and the exported burn-rate
rules checked and unit-tested by promtool: a service burning 20x pages on every pair, one well
inside its budget stays quiet, and the budget left is recorded."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from controlplane.cli import app

pytestmark = pytest.mark.integration
runner = CliRunner()
#: The SLO the `burning` Prometheus fixture holds data for: 3 days, 99.9%.
BURNING_SLO = {
    "name": "checkout-availability",
    "service": "checkout",
    "objective": 0.999,
    "window_days": 3,
    "bad": 'sum(rate(http_errors_total{service="checkout"}[{{.window}}]))',
    "total": 'sum(rate(http_requests_total{service="checkout"}[{{.window}}]))',
}

OPENSLO = (Path(__file__).resolve().parents[1] / "fixtures" / "openslo" / "shop.yaml").read_text()


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool (Debian package prometheus) is needed: make system-deps")
    return found


def imported(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "slos.yaml"
    path.write_text(text)
    done = runner.invoke(app, ["slo", "import", str(path)])
    return done.exit_code, done.output


def test_openslo_documents_import_as_settings(tmp_path):
    code, output = imported(tmp_path, OPENSLO)
    assert code == 0, output
    slos = yaml.safe_load(output)["slos"]
    assert [s["name"] for s in slos] == ["checkout-availability", "search-latency"]
    checkout, search = slos
    assert checkout["objective"] == 0.999
    assert checkout["bad"] == 'sum(rate(http_errors_total{service="checkout"}[{{.window}}]))'
    assert (checkout["window_days"], checkout["calendar"]) == (28, False)
    assert (search["window_days"], search["calendar"]) == (30, True)
    assert (search["op"], search["value"], search["objective"]) == ("lt", 0.5, 0.99)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("openslo/v1\nkind: SLO", "openslo/v2\nkind: SLO"), "apiVersion must be one of"),
        (("type: Prometheus, spec: {query: 'sum(rate(http_errors", "type: Datadog, spec: {query: 'sum(rate(http_errors"),  # noqa: E501
         "ratioMetric.bad.metricSource.type must be Prometheus, got 'Datadog'"),
        (('{service="checkout"}[5m]))\'}}\n        total', '{service="checkout"}))\'}}\n        total'),  # noqa: E501
         "ratioMetric.bad: the query has no [range]"),
        (("duration: 28d", "duration: 28x"), "timeWindow[0].duration must be like 28d"),
        (("target: 0.999", "target: 1.5"), "objective"),
    ],
)  # fmt: skip
def test_bad_openslo_names_the_file_the_slo_and_the_key(tmp_path, change, message):
    old, new = change
    assert old in OPENSLO
    code, output = imported(tmp_path, OPENSLO.replace(old, new, 1))
    assert code != 0
    assert "slos.yaml" in output
    assert "SLO 'checkout-availability'" in output
    assert message in output


def test_burn_rate_rules_page_on_a_fast_burn_and_record_the_budget(tmp_path):
    _code, output = imported(tmp_path, OPENSLO)
    quiet = {
        "name": "payments-availability",
        "service": "payments",
        "objective": 0.999,
        "bad": 'sum(rate(http_errors_total{service="payments"}[{{.window}}]))',
        "total": 'sum(rate(http_requests_total{service="payments"}[{{.window}}]))',
    }
    slos = [*yaml.safe_load(output)["slos"], quiet]
    config = tmp_path / "aiops.yaml"
    config.write_text(
        yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path / 'x.db'}"}, "slos": slos})
    )
    done = runner.invoke(
        app, ["--config", str(config), "rules", "export", "-o", str(tmp_path / "rules.yaml")]
    )
    assert done.exit_code == 0, done.output
    checked = subprocess.run(
        [promtool(), "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # checkout: 2% of requests fail (budget 0.1%: a 20x burn); payments: 0.05% (a 0.5x burn).
    pairs = [("1h", "5m", "14.4", "critical"), ("6h", "30m", "6", "critical"),
             ("1d", "2h", "3", "warning"), ("3d", "6h", "1", "warning")]  # fmt: skip
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'http_requests_total{service="checkout"}', "values": "0+1000x400"},
                    {"series": 'http_errors_total{service="checkout"}', "values": "0+20x400"},
                    {"series": 'http_requests_total{service="payments"}', "values": "0+2000x400"},
                    {"series": 'http_errors_total{service="payments"}', "values": "0+1x400"},
                    {"series": 'search_seconds_bucket{le="0.5"}', "values": "0+10x400"},
                    {"series": 'search_seconds_bucket{le="+Inf"}', "values": "0+10x400"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "6h",
                        "alertname": "AiopsSloBurnRate",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "slo": "checkout-availability",
                                    "service": "checkout",
                                    "severity": severity,
                                    "burn_rate": factor,
                                    "long_window": long,
                                },
                                "exp_annotations": {
                                    "summary": f"checkout-availability (checkout) burns its "
                                    f"error budget {factor}x too fast over {long} and {short}."
                                },
                            }
                            for long, short, factor, severity in pairs
                        ],
                    }
                ],
                "promql_expr_test": [
                    {
                        "expr": 'aiops:slo_error_budget:remaining{slo="checkout-availability"}',
                        "eval_time": "6h",
                        "exp_samples": [
                            {
                                "labels": 'aiops:slo_error_budget:remaining{service="checkout",'
                                'slo="checkout-availability"}',
                                "value": -19,
                            }
                        ],
                    },
                    {
                        "expr": 'aiops:slo_error_budget:remaining{slo="search-latency"}',
                        "eval_time": "6h",
                        "exp_samples": [
                            {
                                "labels": 'aiops:slo_error_budget:remaining{service="search",'
                                'slo="search-latency"}',
                                "value": 1,
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    tested = subprocess.run(
        [promtool(), "test", "rules", "tests.yaml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.fixture
def burning(tmp_path):
    """A real Prometheus holding 4 days of checkout burning 20x its budget since 2 days ago
    (before that 0.05% of requests failed), and search, whose p99 is always fast."""
    from datetime import UTC, datetime, timedelta

    from controlplane.domain.errors import ConfigError
    from controlplane.testing.servers import Prometheus, openmetrics

    end = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = 4 * 24 * 60
    stamps = [(end - timedelta(minutes=minutes - 1 - i)).timestamp() for i in range(minutes)]
    start_burn = minutes // 2
    errors, total, requests = [], 0.0, []
    for i in range(minutes):
        total += 2.0 if i >= start_burn else 0.05
        errors.append(total)
        requests.append(100.0 * (i + 1))
    series = {
        ("http_requests_total", "checkout"): requests,
        ("http_errors_total", "checkout"): errors,
    }
    try:
        with Prometheus(tmp_path / "prometheus", history=openmetrics(series, stamps)) as server:
            yield server.url
    except ConfigError as exc:
        pytest.fail(str(exc))


def test_the_api_evaluates_burn_rates_and_the_budget_on_prometheus(burning, settings, db, tokens):
    from fastapi.testclient import TestClient

    from controlplane.api import create_app
    from controlplane.config import load_settings
    from tests.factories import bearer

    slo = BURNING_SLO
    config = load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        prometheus={"url": burning},
        slos=[slo],
    )
    with TestClient(create_app(config, db)) as client:
        (evaluated,) = client.get("/api/v1/slos", headers=bearer(tokens["viewer"])).json()
        series = client.get(
            "/api/v1/slos/checkout-availability/budget?days=3", headers=bearer(tokens["viewer"])
        ).json()
        missing = client.get("/api/v1/slos/nope/budget", headers=bearer(tokens["viewer"]))
    assert evaluated["burn_rates"]["1h"] == pytest.approx(20, rel=0.05)  # 2% of requests fail
    assert evaluated["status"] == "exhausted"
    # Over 3 days: 2 at 20x and 1 at 0.5x, so 13.5x the budget is spent.
    assert evaluated["budget_remaining"] == pytest.approx(1 - (2 * 20 + 0.5) / 3, rel=0.05)
    assert {a["long"] for a in evaluated["alerts"]} == {"1h", "6h", "1d", "3d"}  # 3d: 13.5x
    remaining = [p["remaining"] for p in series["points"]]
    assert remaining[0] > remaining[-1]  # the budget went down as the burn went on
    assert missing.status_code == 404


def test_the_slo_page_shows_the_budget_and_the_alerts(burning, settings, db, tokens, monkeypatch):
    from controlplane.api import create_app
    from controlplane.config import load_settings
    from controlplane.testing.servers import ApiServer
    from tests.factories import signed_in

    slo = BURNING_SLO
    config = load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        prometheus={"url": burning},
        slos=[slo],
    )
    with ApiServer(create_app(config, db)) as api:
        monkeypatch.setenv("AIOPS_CONSOLE__API_URL", api.url)
        app = signed_in(tokens["viewer"], "viewer", "test-viewer", "slos")
    assert not app.exception
    assert ":red-badge[budget exhausted]" in app.markdown[0].value
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Burn rate 1h"] in ("19.9x", "20.0x", "20.1x")
    assert len(app.error) == 4  # the four burn-rate pairs hold
    assert app.get("arrow_vega_lite_chart") or app.get("vega_lite_chart")  # the budget chart


def test_no_risky_restart_while_the_budget_is_spent(burning, settings, db, client):
    """The policy loop reads the SLO's budget from Prometheus: checkout has spent its budget,
    so the restart policy that requires 10% left is refused, naming why."""
    from controlplane.config import load_settings
    from controlplane.policy.runner import PolicyRunner
    from controlplane.policy.schema import Policy
    from controlplane.testing.kube import FakeKube
    from tests.factories import WEBHOOK_TOKEN, WEBHOOK_URL, alert, bearer, notification

    slo = BURNING_SLO
    careful = Policy.model_validate(
        {
            "name": "checkout-restart",
            "match": {"service": ["checkout"]},
            "action": {"type": "rollout_restart", "namespace": "shop", "deployment": "checkout"},
            "mode": "auto",
            "guardrails": {"min_error_budget": {"slo": "checkout-availability", "remaining": 0.1}},
        }
    )
    body = notification([alert("slo1", service="checkout", severity="critical")], "g-slo")
    assert client.post(WEBHOOK_URL, json=body, headers=bearer(WEBHOOK_TOKEN)).status_code == 200
    with FakeKube() as cluster:
        cluster.add_deployment("shop", "checkout", replicas=2)
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            prometheus={"url": burning},
            automation={"kubernetes": {"host": cluster.url}},
            slos=[slo],
        )
        PolicyRunner(config, db, policies=[careful]).cycle()
    with db.read() as session:
        from sqlalchemy import select

        from controlplane.storage.models import DecisionRow

        (decision,) = session.scalars(select(DecisionRow)).all()
    assert decision.status == "refused"
    assert "SLO 'checkout-availability' has -" in decision.reason
    assert "of its error budget left (needs 10%)" in decision.reason


def test_a_fast_burn_proposes_rolling_back_the_last_change(settings, db, client):
    """The shipped policy: AiopsSloBurnRate at 14.4x (as Alertmanager sends it once the exported
    rules fire) plans a rollback of the service's last rollout, waiting for a person."""
    from sqlalchemy import select

    from controlplane.config import load_settings
    from controlplane.policy.runner import PolicyRunner, shipped_policies
    from controlplane.policy.schema import load_policies
    from controlplane.storage.models import DecisionRow
    from controlplane.testing.kube import FakeKube
    from tests.factories import WEBHOOK_TOKEN, WEBHOOK_URL, alert, bearer, notification

    fired = alert("burn1", service="payments", severity="critical")
    fired["labels"].update(
        {"alertname": "AiopsSloBurnRate", "slo": "payments-availability", "burn_rate": "14.4"}
    )
    body = notification([fired], "g-burn")
    assert client.post(WEBHOOK_URL, json=body, headers=bearer(WEBHOOK_TOKEN)).status_code == 200
    shipped = [p for p in load_policies(shipped_policies()) if p.name == "slo-burn-rollback"]
    with FakeKube() as cluster:
        cluster.add_deployment("shop", "payments", replicas=2, image="shop/payments:1.0")
        cluster.roll_out("shop", "payments", "shop/payments:1.1")
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            automation={"kubernetes": {"host": cluster.url}},
        )
        PolicyRunner(config, db, policies=shipped).cycle()
    with db.read() as session:
        (decision,) = session.scalars(select(DecisionRow)).all()
    assert (decision.policy, decision.status) == ("slo-burn-rollback", "pending_approval")
    diff = str(decision.plan["diff"])
    assert "shop/payments:1.1" in diff
    assert "shop/payments:1.0" in diff
