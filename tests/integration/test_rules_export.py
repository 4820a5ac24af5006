"""`aiops rules export`: the rule file passes `promtool check rules`, its capacity alert fires
when `promtool test rules` feeds it a series heading for its limit (and not before), the
PrometheusRule form carries the same groups, and the health group is deploy's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from controlplane.cli import app

pytestmark = pytest.mark.integration
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "base" / "monitoring.yaml"
runner = CliRunner()


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool (Debian package prometheus) is needed: make system-deps")
    return found


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "aiops.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite:///{tmp_path / 'x.db'}"},
                "capacity": {
                    "lead_seconds": 3600,
                    "step_seconds": 60,
                    "signals": [
                        {
                            "name": "db-disk",
                            "service": "db",
                            "resource": "disk",
                            "query": 'disk_used_gib{service="db"}',
                            "limit": 100,
                        }
                    ],
                },
            }
        )
    )
    return path


def export(config: Path, out: Path, kind: str) -> dict:
    done = runner.invoke(
        app, ["--config", str(config), "rules", "export", "--format", kind, "-o", str(out)]
    )
    assert done.exit_code == 0, done.output
    return yaml.safe_load(out.read_text())


def test_the_rule_file_passes_promtool_and_its_capacity_alert_fires_on_course(config, tmp_path):
    rules = export(config, tmp_path / "rules.yaml", "prometheus")
    checked = subprocess.run(
        [promtool(), "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert [g["name"] for g in rules["groups"]] == [
        "aiops-anomalies",
        "aiops-capacity",
        "aiops-control-plane",
    ]
    # Half a GiB a minute from 0: at 120 min (60 GiB) an hour ahead is 90, under the limit;
    # from about 140 min the line crosses 100 within the hour, so after `for: 30m` it fires.
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": 'disk_used_gib{service="db"}', "values": "0+0.5x240"}],
                "alert_rule_test": [
                    {"eval_time": "120m", "alertname": "AiopsCapacityCrossing", "exp_alerts": []},
                    {
                        "eval_time": "180m",
                        "alertname": "AiopsCapacityCrossing",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "signal": "db-disk",
                                    "service": "db",
                                    "resource": "disk",
                                },
                                "exp_annotations": {
                                    "summary": "db-disk (db) is on course to cross its limit "
                                    "within 1 h."
                                },
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


def test_the_prometheus_rule_carries_the_same_groups_and_deploys_health(config, tmp_path):
    plain = export(config, tmp_path / "rules.yaml", "prometheus")
    operator = export(config, tmp_path / "rule.yaml", "kubernetes")
    assert operator["kind"] == "PrometheusRule"
    assert operator["apiVersion"] == "monitoring.coreos.com/v1"
    assert operator["spec"] == plain
    deployed = next(
        d for d in yaml.safe_load_all(DEPLOY.read_text()) if d["kind"] == "PrometheusRule"
    )
    health = next(g for g in plain["groups"] if g["name"] == "aiops-control-plane")
    assert deployed["spec"]["groups"] == [health]


def test_a_bad_format_is_refused(config):
    done = runner.invoke(app, ["--config", str(config), "rules", "export", "--format", "json"])
    assert done.exit_code != 0
    assert "--format must be 'prometheus' or 'kubernetes', got 'json'" in done.output
