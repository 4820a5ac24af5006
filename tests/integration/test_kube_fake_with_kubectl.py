"""The fake API server stays faithful: the real `kubectl`, where the machine has one, drives
it through discovery, get, scale, patch and server-side dry runs, and sees what a real API
server would answer. Skips with the reason where kubectl is absent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.testing.kube import FakeKube

pytestmark = pytest.mark.integration
NS = "shop"


@pytest.fixture
def kubectl(tmp_path: Path) -> Iterator[tuple[FakeKube, list[str], dict[str, str]]]:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed on this machine")
    with FakeKube() as cluster:
        cluster.add_deployment(NS, "checkout", replicas=2, image="shop/checkout:1.4")
        cluster.add_statefulset(NS, "db", replicas=3)
        config = tmp_path / "kubeconfig"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": cluster.url}}],
                    "users": [{"name": "tester", "user": {"token": "not-checked"}}],
                    "contexts": [
                        {
                            "name": "fake",
                            "context": {"cluster": "fake", "user": "tester", "namespace": NS},
                        }
                    ],
                    "current-context": "fake",
                }
            )
        )
        env = {
            **os.environ,
            "KUBECONFIG": str(config),
            "HOME": str(tmp_path),  # its discovery cache goes here, not into the user's home
        }
        yield cluster, [binary], env


def run(kubectl: tuple[FakeKube, list[str], dict[str, str]], *args: str) -> str:
    _, command, env = kubectl
    done = subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_get_lists_and_reads_through_discovery(kubectl):
    listed = run(kubectl, "get", "deployments", "-o", "name")
    assert listed.split() == ["deployment.apps/checkout"]
    table = run(kubectl, "get", "sts")
    assert "db" in table
    one = json.loads(run(kubectl, "get", "deployment", "checkout", "-o", "json"))
    assert one["kind"] == "Deployment"
    assert one["spec"]["replicas"] == 2


def test_scale_and_patch_change_state_and_bump_the_version(kubectl):
    cluster = kubectl[0]
    version = cluster.get("deployments", NS, "checkout")["metadata"]["resourceVersion"]
    assert "scaled" in run(kubectl, "scale", "deployment/checkout", "--replicas=5")
    scaled = cluster.get("deployments", NS, "checkout")
    assert scaled["spec"]["replicas"] == 5
    assert scaled["metadata"]["resourceVersion"] != version
    assert "scaled" in run(kubectl, "scale", "statefulset/db", "--replicas=4")
    assert cluster.get("statefulsets", NS, "db")["spec"]["replicas"] == 4
    run(kubectl, "patch", "deployment", "checkout", "--type=merge", "-p", '{"spec":{"replicas":3}}')
    assert cluster.get("deployments", NS, "checkout")["spec"]["replicas"] == 3
    restart = '{"spec":{"template":{"metadata":{"annotations":{"restarted":"now"}}}}}'
    run(kubectl, "patch", "deployment", "checkout", "-p", restart)  # strategic merge
    template = cluster.get("deployments", NS, "checkout")["spec"]["template"]
    assert template["metadata"]["annotations"] == {"restarted": "now"}
    assert template["spec"]["containers"][0]["image"] == "shop/checkout:1.4"


def test_server_side_dry_run_persists_nothing(kubectl):
    cluster = kubectl[0]
    before = cluster.get("deployments", NS, "checkout")
    out = run(kubectl, "scale", "deployment/checkout", "--replicas=9", "--dry-run=server")
    assert "server dry run" in out
    patched = run(
        kubectl,
        "patch",
        "deployment",
        "checkout",
        "--type=merge",
        "-p",
        '{"spec":{"replicas":7}}',
        "--dry-run=server",
        "-o",
        "json",
    )
    assert json.loads(patched)["spec"]["replicas"] == 7  # the answer shows the result
    assert cluster.get("deployments", NS, "checkout") == before
    assert all(r.query.get("dryRun") == ["All"] for r in cluster.sent())


def test_errors_come_back_as_kubernetes_status(kubectl):
    _, command, env = kubectl
    missing = subprocess.run(
        [*command, "get", "deployment", "nope"], env=env, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode != 0
    assert 'deployments "nope" not found' in missing.stderr
    invalid = subprocess.run(
        [*command, "scale", "deployment/checkout", "--replicas=-1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert invalid.returncode != 0
