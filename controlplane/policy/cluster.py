"""The cluster connection remediations use: built from settings, made on first use, once."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from controlplane.config import KubernetesSettings
from controlplane.domain.errors import PermanentError
from remediations import Kube

#: Set in every pod (with the service account's token and CA files mounted).
IN_CLUSTER_VARIABLE = "KUBERNETES_SERVICE_HOST"


def connect(k8s: KubernetesSettings) -> Kube:
    """The cluster from settings (host, else kubeconfig, else ~/.kube/config, else the pod's
    service account when running in a pod); a clear error when there is none."""
    if k8s.host:
        token = k8s.token.get_secret_value() if k8s.token else None
        return Kube(
            host=k8s.host,
            token=token,
            verify_tls=k8s.verify_tls,
            timeout_seconds=k8s.timeout_seconds,
        )
    kubeconfig = k8s.kubeconfig
    if kubeconfig is None and not (Path.home() / ".kube" / "config").exists():
        if os.environ.get(IN_CLUSTER_VARIABLE):
            return Kube(in_cluster=True, timeout_seconds=k8s.timeout_seconds)
        raise PermanentError(
            "no Kubernetes cluster configured (automation.kubernetes.host, "
            "automation.kubernetes.kubeconfig, KUBECONFIG, or a pod's service account)"
        )
    return Kube(
        kubeconfig=str(kubeconfig) if kubeconfig else None,
        context=k8s.context,
        verify_tls=k8s.verify_tls,
        timeout_seconds=k8s.timeout_seconds,
    )


class LazyCluster:
    """A `KubeFactory`: connects on the first call (or through `make`), then reuses it."""

    def __init__(self, make: Callable[[], Kube]) -> None:
        self._make = make
        self._kube: Kube | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Kube:
        with self._lock:
            if self._kube is None:
                self._kube = self._make()
            return self._kube
