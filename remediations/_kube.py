"""The only module that imports the official `kubernetes` client.

`Kube` reads and writes the few objects remediations touch (Deployments and StatefulSets with
their `scale` subresource, ReplicaSets, HorizontalPodAutoscalers, Services), always as plain
dicts (what the API server sent, as JSON), so that plans can show before/after diffs. Writes take
`dry_run=True` to send `dryRun=All`: the API server runs admission and validation and persists
nothing. Errors become the control plane's: 404 `NotFoundError`, 409 `KubeConflictError` (re-read
and retry), 429/5xx/unreachable `TemporaryError`, any other refusal `PermanentError`, each with
the server's `Status` message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from controlplane.domain.errors import NotFoundError, PermanentError, TemporaryError

FIELD_MANAGER = "aiops-control-plane"
#: The deployment controller numbers pod-template revisions on Deployments and ReplicaSets.
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
PatchType = Literal["strategic", "merge", "json"]
WorkloadKind = Literal["Deployment", "StatefulSet"]
_CONTENT_TYPES = {
    "strategic": "application/strategic-merge-patch+json",
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}
T = TypeVar("T")


class KubeConflictError(TemporaryError):
    """409: the object changed since it was read (or already exists); re-read and retry."""


class Kube:
    """A connection to one cluster: an explicit `host` (and token), the pod's service account
    (`in_cluster`: the KUBERNETES_SERVICE_* variables, token and CA files every pod has), or
    a kubeconfig."""

    def __init__(
        self,
        *,
        host: str | None = None,
        token: str | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        verify_tls: bool = True,
        timeout_seconds: float = 10.0,
        in_cluster: bool = False,
    ) -> None:
        if in_cluster:
            configuration = client.Configuration()
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException as exc:
                raise PermanentError(f"in-cluster Kubernetes configuration: {exc}") from None
        elif host:
            configuration = client.Configuration()
            configuration.host = host
            configuration.verify_ssl = verify_tls
            if token:
                configuration.api_key = {"authorization": f"Bearer {token}"}
        else:
            configuration = client.Configuration()
            config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        self.api_client = client.ApiClient(configuration)
        self.apps = client.AppsV1Api(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.autoscaling = client.AutoscalingV2Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.timeout = timeout_seconds
        self.where = configuration.host

    def close(self) -> None:
        self.api_client.close()

    # -- workloads (Deployments, StatefulSets) ----------------------------------------------
    def workload(self, kind: WorkloadKind, namespace: str, name: str) -> dict[str, Any]:
        read = {
            "Deployment": self.apps.read_namespaced_deployment,
            "StatefulSet": self.apps.read_namespaced_stateful_set,
        }[kind]
        return self._call(lambda: read(name, namespace, _request_timeout=self.timeout))

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self.workload("Deployment", namespace, name)

    def patch_deployment(
        self,
        namespace: str,
        name: str,
        body: Any,
        *,
        dry_run: bool,
        patch_type: PatchType = "strategic",
    ) -> dict[str, Any]:
        return self._call(
            lambda: self.apps.patch_namespaced_deployment(
                name, namespace, body, **self._write_options(dry_run, patch_type)
            )
        )

    def patch_scale(
        self, kind: WorkloadKind, namespace: str, name: str, replicas: int, *, dry_run: bool
    ) -> dict[str, Any]:
        """Set replicas through the workload's `scale` subresource."""
        patch = {
            "Deployment": self.apps.patch_namespaced_deployment_scale,
            "StatefulSet": self.apps.patch_namespaced_stateful_set_scale,
        }[kind]
        return self._call(
            lambda: patch(
                name,
                namespace,
                {"spec": {"replicas": replicas}},
                **self._write_options(dry_run, "merge"),
            )
        )

    def replicasets(self, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        found = self._call(
            lambda: self.apps.list_namespaced_replica_set(
                namespace, label_selector=_selector(selector), _request_timeout=self.timeout
            )
        )
        return list(found.get("items", []))

    # -- autoscalers ------------------------------------------------------------------------
    def hpa_for(self, kind: WorkloadKind, namespace: str, name: str) -> dict[str, Any] | None:
        """The HorizontalPodAutoscaler that owns a workload's replica count, if any."""
        found = self._call(
            lambda: self.autoscaling.list_namespaced_horizontal_pod_autoscaler(
                namespace, _request_timeout=self.timeout
            )
        )
        for hpa in found.get("items", []):
            ref = hpa.get("spec", {}).get("scaleTargetRef", {})
            if ref.get("kind") == kind and ref.get("name") == name:
                return dict(hpa)
        return None

    def patch_hpa(self, namespace: str, name: str, body: Any, *, dry_run: bool) -> dict[str, Any]:
        return self._call(
            lambda: self.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                name, namespace, body, **self._write_options(dry_run, "merge")
            )
        )

    # -- services ---------------------------------------------------------------------------
    def service(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call(
            lambda: self.core.read_namespaced_service(
                name, namespace, _request_timeout=self.timeout
            )
        )

    def patch_service(
        self, namespace: str, name: str, body: Any, *, dry_run: bool, patch_type: PatchType = "json"
    ) -> dict[str, Any]:
        return self._call(
            lambda: self.core.patch_namespaced_service(
                name, namespace, body, **self._write_options(dry_run, patch_type)
            )
        )

    # -- custom resources (Gateway API HTTPRoute, Istio VirtualService) ---------------------
    def custom_object(
        self, group: str, version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any]:
        return self._call(
            lambda: self.custom.get_namespaced_custom_object(
                group, version, namespace, plural, name, _request_timeout=self.timeout
            )
        )

    def patch_custom_object(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        name: str,
        body: Any,
        *,
        dry_run: bool,
    ) -> dict[str, Any]:
        """A JSON patch (custom resources take no strategic merge)."""
        options = self._write_options(dry_run, "json")
        return self._call(
            lambda: self.custom.patch_namespaced_custom_object(
                group, version, namespace, plural, name, body, **options
            )
        )

    # -- plumbing ---------------------------------------------------------------------------
    def _write_options(self, dry_run: bool, patch_type: PatchType) -> dict[str, Any]:
        options: dict[str, Any] = {
            "field_manager": FIELD_MANAGER,
            "_content_type": _CONTENT_TYPES[patch_type],
            "_request_timeout": self.timeout,
        }
        if dry_run:
            options["dry_run"] = "All"
        return options

    def _call(self, request: Callable[[], Any]) -> dict[str, Any]:
        try:
            result = request()
        except ApiException as exc:
            raise _error(exc, self.where) from None
        except HTTPError as exc:
            raise TemporaryError(f"Kubernetes API at {self.where} unreachable: {exc}") from None
        # JSON-shaped plain data, exactly what the server sent (camelCase keys).
        return cast(dict[str, Any], self.api_client.sanitize_for_serialization(result))


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _error(exc: ApiException, where: str) -> Exception:
    try:
        message = json.loads(exc.body or "{}").get("message") or exc.reason
    except (ValueError, AttributeError):
        message = exc.reason
    text = f"Kubernetes API at {where}: {exc.status} {message}"
    if exc.status == 404:
        return NotFoundError(text)
    if exc.status == 409:
        return KubeConflictError(text, delay=0.2)
    if exc.status in (429, 500, 502, 503, 504):
        return TemporaryError(text)
    return PermanentError(text)


def retry_on_conflict(attempt: Callable[[], T], *, attempts: int = 5) -> T:
    """Run `attempt` (which reads fresh state, then writes) again after a 409, a few times."""
    for remaining in range(attempts - 1, -1, -1):
        try:
            return attempt()
        except KubeConflictError:
            if not remaining:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
