"""The Kubernetes manifests (deploy/), checked offline as far as this machine allows.

- Each overlay renders with `kubectl kustomize` (shipped in kubectl).
- Every object of a built-in kind survives the official client's models: deserialised into
  its `V1...` class (required fields checked) and serialised back unchanged, so a misspelt
  or misplaced field (which the models would drop) fails.
- Every object passes a server-side dry run (`dryRun=All`) against the fake API server
  through the official client, and nothing is persisted.
- (The workers' ClusterRole is checked against what the registered actions send in
  test_action_contract.py, beside the actions' scenarios.)
- The settings and policies the manifests mount load; the container args are commands the
  CLI knows; the PrometheusRule passes `promtool check rules`.
- In-cluster authentication: with no kubeconfig, the worker's cluster connection uses the
  pod's service account (environment variables, token and CA files), over TLS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, utils

from controlplane.config import KubernetesSettings, load_settings
from controlplane.policy.cluster import connect
from controlplane.policy.schema import load_policies
from controlplane.testing.kube import FakeKube
from tests.factories import render_manifests

pytestmark = pytest.mark.integration
OVERLAYS = ["staging", "production"]
CUSTOM = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render_manifests(request.param)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_every_part_the_issue_names_is_there(rendered):
    kinds = sorted({o["kind"] for o in rendered})
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Secret",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )
    namespaced = [o for o in rendered if not o["kind"].startswith("Cluster")]
    assert len({o["metadata"]["namespace"] for o in namespaced}) == 1
    (binding,) = by_kind(rendered, "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == namespaced[0]["metadata"]["namespace"]


def test_built_in_objects_round_trip_through_the_official_models(rendered):
    api = client.ApiClient()
    for obj in rendered:
        if obj["kind"] in CUSTOM:
            continue
        model = f"V1{obj['kind']}"
        typed = api.deserialize(json.dumps(obj), model, "application/json")
        assert api.sanitize_for_serialization(typed) == obj, f"{obj['kind']} {obj['metadata']}"


def test_every_object_passes_a_server_side_dry_run_and_nothing_is_stored(rendered):
    with FakeKube() as cluster:
        api = client.ApiClient(client.Configuration(host=cluster.url))
        custom = client.CustomObjectsApi(api)
        for obj in rendered:
            namespace = obj["metadata"].get("namespace")
            if obj["kind"] in CUSTOM:
                group, version = obj["apiVersion"].split("/")
                custom.create_namespaced_custom_object(
                    group, version, namespace, CUSTOM[obj["kind"]], obj, dry_run="All"
                )
            else:
                utils.create_from_dict(api, obj, dry_run="All", namespace=namespace)
        assert cluster.objects == {}
        assert len(cluster.sent("POST")) == len(rendered)
        assert all(r.query.get("dryRun") == ["All"] for r in cluster.sent("POST"))


def test_the_fake_refuses_what_the_real_server_would():
    with FakeKube() as cluster:
        api = client.ApiClient(client.Configuration(host=cluster.url))
        bad_name = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}
        with pytest.raises(utils.FailToCreateError, match="RFC 1123"):
            utils.create_from_dict(api, bad_name, namespace="aiops", dry_run="All")
        pdb = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "both"},
            "spec": {"minAvailable": 1, "maxUnavailable": 1, "selector": {}},
        }
        with pytest.raises(utils.FailToCreateError, match="exactly one"):
            utils.create_from_dict(api, pdb, namespace="aiops", dry_run="All")


def test_the_api_has_no_cluster_access(rendered):
    (api,) = [d for d in by_kind(rendered, "Deployment") if d["metadata"]["name"] == "aiops-api"]
    pod = api["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (binding,) = by_kind(rendered, "ClusterRoleBinding")
    assert [s["name"] for s in binding["subjects"]] == ["aiops-worker"]


def test_pods_run_non_root_on_a_read_only_root_file_system(rendered):
    for deployment in by_kind(rendered, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"] + pod.get("initContainers", []):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["limits"]


def _mounted(rendered: list[dict[str, Any]], prefix: str) -> dict[str, str]:
    (config_map,) = [
        c for c in by_kind(rendered, "ConfigMap") if c["metadata"]["name"].startswith(prefix)
    ]
    return dict(config_map["data"])


def test_the_mounted_settings_and_policies_load(rendered, tmp_path):
    (settings_text,) = _mounted(rendered, "aiops-settings").values()
    path = tmp_path / "settings.yaml"
    path.write_text(settings_text)
    loaded = load_settings(path)
    assert loaded.api.run_loops is False
    folder = tmp_path / "policies"
    folder.mkdir()
    for name, text in _mounted(rendered, "aiops-policies").items():
        (folder / name).write_text(text)
    assert load_policies(folder)


def test_container_args_are_commands_the_cli_knows(rendered, tmp_path):
    aiops = Path(sys.executable).with_name("aiops")
    (settings_text,) = _mounted(rendered, "aiops-settings").values()
    path = tmp_path / "settings.yaml"
    path.write_text(settings_text)
    for deployment in by_kind(rendered, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            args = [
                path.as_posix() if a == "/etc/aiops/settings.yaml" else a for a in container["args"]
            ]
            done = subprocess.run(
                [aiops, *args, "--help"], capture_output=True, text=True, check=False
            )
            assert done.returncode == 0, f"{container['name']}: {done.stderr}"


def test_the_self_monitoring_rules_pass_promtool(rendered, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool (Debian package prometheus) is needed: make system-deps")
    (rule,) = by_kind(rendered, "PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {
        "AiopsIntakeFailing",
        "AiopsLoopsStalled",
        "AiopsLeasesLost",
        "AiopsDetectionLagging",
    } <= alerts


@pytest.fixture
def pod_identity(tmp_path, monkeypatch):
    """What a pod has: KUBERNETES_SERVICE_HOST/PORT, and the service account's token and CA
    certificate files (here in a temporary folder rather than /var/run/secrets)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make the fake API server's certificate")
    cert, key = tmp_path / "ca.crt", tmp_path / "tls.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    token = tmp_path / "token"
    token.write_text("pod-service-account-token")
    monkeypatch.setattr(config.incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(config.incluster_config, "SERVICE_CERT_FILENAME", str(cert))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    with FakeKube(tls=(cert, key), token="pod-service-account-token") as cluster:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", cluster.url.rsplit(":", 1)[1])
        yield cluster


def test_without_a_kubeconfig_the_worker_uses_the_pods_service_account(pod_identity):
    cluster = pod_identity
    cluster.add_deployment("shop", "checkout", replicas=2)
    kube = connect(KubernetesSettings())
    try:
        assert kube.deployment("shop", "checkout")["spec"]["replicas"] == 2
    finally:
        kube.close()
    assert kube.where.startswith("https://127.0.0.1:")  # verified against the pod's CA file
    assert {r.authorization.lower() for r in cluster.requests} == {
        "bearer pod-service-account-token"
    }


def test_the_fake_refuses_a_request_without_the_token(pod_identity):
    configuration = client.Configuration(host=pod_identity.url)
    configuration.ssl_ca_cert = str(pod_identity.tls[0])
    kube = client.CoreV1Api(client.ApiClient(configuration))
    with pytest.raises(client.ApiException) as refused:
        kube.read_namespaced_service("checkout", "shop")
    assert refused.value.status == 401
