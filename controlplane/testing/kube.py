"""A faithful fake Kubernetes API server on loopback: the tests' cluster, and the demo's
Kubernetes stand-in when no cluster is configured.

No real API server can run on these machines (see ../shared/docs/real-components.md), so this
one honours the semantics remediations rely on, over real HTTP, so that the official client's
own serialisation, paths, query strings and content types are exercised:

- Deployments and StatefulSets (with the `scale` subresource), ReplicaSets,
  HorizontalPodAutoscalers (v2), Services, Pods; GET, LIST (with `labelSelector`), POST, PUT,
  PATCH, DELETE; and the discovery documents (`/version`, `/api`, `/apis`, each group
  version's resource list), so `kubectl` itself can drive it.
- `dryRun=All` runs everything (validation, patching, the deployment controller's effects on
  the returned object) and persists nothing.
- `metadata.resourceVersion` bumps on every real change; a PUT or PATCH carrying a stale one
  answers 409 Conflict. Errors are `metav1.Status` JSON (404, 409, 415, 422).
- Patches: strategic merge (lists of objects merged by `name`, `$patch: delete`), JSON merge
  (RFC 7386) and JSON patch (RFC 6902), chosen by Content-Type.
- A deployment controller: a changed pod template makes a new ReplicaSet with the next
  `deployment.kubernetes.io/revision`; status follows spec at once unless the test holds a
  workload `unready` (to make verification fail). The StatefulSet controller and the HPA
  controller act at once too (the HPA keeps its target's replicas within [min, max]).

Every request is recorded (`requests`) so tests can assert on what the client actually sent.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import re
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REVISION = "deployment.kubernetes.io/revision"
KINDS = {
    # plural: (api prefix, kind, apiVersion)
    "deployments": ("/apis/apps/v1", "Deployment", "apps/v1"),
    "statefulsets": ("/apis/apps/v1", "StatefulSet", "apps/v1"),
    "replicasets": ("/apis/apps/v1", "ReplicaSet", "apps/v1"),
    "horizontalpodautoscalers": (
        "/apis/autoscaling/v2",
        "HorizontalPodAutoscaler",
        "autoscaling/v2",
    ),
    "services": ("/api/v1", "Service", "v1"),
    "pods": ("/api/v1", "Pod", "v1"),
    # What the control plane's own manifests (deploy/) are made of, for their dry run.
    "configmaps": ("/api/v1", "ConfigMap", "v1"),
    "secrets": ("/api/v1", "Secret", "v1"),
    "serviceaccounts": ("/api/v1", "ServiceAccount", "v1"),
    "poddisruptionbudgets": ("/apis/policy/v1", "PodDisruptionBudget", "policy/v1"),
    "networkpolicies": (
        "/apis/networking.k8s.io/v1",
        "NetworkPolicy",
        "networking.k8s.io/v1",
    ),
    "clusterroles": (
        "/apis/rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "rbac.authorization.k8s.io/v1",
    ),
    "clusterrolebindings": (
        "/apis/rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io/v1",
    ),
    # Custom resources of the Prometheus Operator (served as if from their CRDs).
    "servicemonitors": (
        "/apis/monitoring.coreos.com/v1",
        "ServiceMonitor",
        "monitoring.coreos.com/v1",
    ),
    "prometheusrules": (
        "/apis/monitoring.coreos.com/v1",
        "PrometheusRule",
        "monitoring.coreos.com/v1",
    ),
    # Traffic routing: the Gateway API's HTTPRoute and Istio's VirtualService.
    "httproutes": (
        "/apis/gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "gateway.networking.k8s.io/v1",
    ),
    "virtualservices": (
        "/apis/networking.istio.io/v1",
        "VirtualService",
        "networking.istio.io/v1",
    ),
    # Envoy Gateway's per-route traffic policy (rate limits).
    "backendtrafficpolicies": (
        "/apis/gateway.envoyproxy.io/v1alpha1",
        "BackendTrafficPolicy",
        "gateway.envoyproxy.io/v1alpha1",
    ),
}
CLUSTER_SCOPED = {"clusterroles", "clusterrolebindings"}
#: metadata.name of most kinds: a DNS-1123 subdomain.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SCALABLE = ("deployments", "statefulsets")
WORKLOADS = {"Deployment": "deployments", "StatefulSet": "statefulsets"}
SHORT_NAMES = {
    "deployments": ["deploy"],
    "statefulsets": ["sts"],
    "replicasets": ["rs"],
    "horizontalpodautoscalers": ["hpa"],
    "services": ["svc"],
    "pods": ["po"],
}
SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-aiops-fake"}
PATCH_TYPES = {
    "application/strategic-merge-patch+json": "strategic",
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/apply-patch+yaml": "apply",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any
    authorization: str | None = None


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


class FakeKube:
    """The cluster state plus the HTTP server; use as a context manager."""

    def __init__(self, *, tls: tuple[Path, Path] | None = None, token: str | None = None) -> None:
        """`tls`: (certificate, key) files to serve HTTPS with, as a real API server does;
        `token`: the bearer token every request must carry (401 otherwise)."""
        self.tls, self.token = tls, token
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.version = 1000
        self.requests: list[Request] = []
        self.unready: set[tuple[str, str]] = set()
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> FakeKube:
        handler = type("Handler", (_Handler,), {"kube": self})
        self._server, self.url = serve_in_thread(handler, tls=self.tls)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        stop_serving(self._server)

    # -- seeding and inspection (tests) -----------------------------------------------------------
    def add_deployment(
        self,
        namespace: str,
        name: str,
        replicas: int = 2,
        image: str = "shop/app:1",
        requests: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A Deployment; `requests` (e.g. {"cpu": "500m", "memory": "1Gi"}) per replica."""
        body = _workload(namespace, name, replicas, image)
        if requests:
            container = body["spec"]["template"]["spec"]["containers"][0]
            container["resources"] = {"requests": requests}
        return self.create("deployments", namespace, body)

    def add_httproute(self, namespace: str, name: str, backends: dict[str, int]) -> dict[str, Any]:
        """A Gateway API HTTPRoute with one rule sending traffic to `backends` (name: weight)."""
        refs = [{"name": b, "port": 80, "weight": w} for b, w in backends.items()]
        body = {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"parentRefs": [{"name": "gateway"}], "rules": [{"backendRefs": refs}]},
        }
        return self.create("httproutes", namespace, body)

    def add_virtualservice(
        self, namespace: str, name: str, hosts: dict[str, int]
    ) -> dict[str, Any]:
        """An Istio VirtualService with one HTTP route to `hosts` (host: weight)."""
        routes = [{"destination": {"host": h}, "weight": w} for h, w in hosts.items()]
        body = {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"hosts": [name], "http": [{"route": routes}]},
        }
        return self.create("virtualservices", namespace, body)

    def add_backendtrafficpolicy(self, namespace: str, name: str, route: str) -> dict[str, Any]:
        """An Envoy Gateway BackendTrafficPolicy on an HTTPRoute, without rate limits yet."""
        target = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": route}
        body = {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"targetRefs": [target]},
        }
        return self.create("backendtrafficpolicies", namespace, body)

    def add_statefulset(
        self, namespace: str, name: str, replicas: int = 3, image: str = "shop/db:1"
    ) -> dict[str, Any]:
        body = _workload(namespace, name, replicas, image)
        body["spec"]["serviceName"] = name
        return self.create("statefulsets", namespace, body)

    def roll_out(self, namespace: str, name: str, image: str) -> dict[str, Any]:
        """A new release: every container of the deployment gets `image` (a new revision)."""
        with self.lock:
            current = self._load("deployments", namespace, name)
            updated = copy.deepcopy(current)
            for container in updated["spec"]["template"]["spec"]["containers"]:
                container["image"] = image
            return self._store("deployments", namespace, name, current, updated, dry_run=False)

    def add_hpa(
        self,
        namespace: str,
        name: str,
        target: str,
        low: int,
        high: int,
        kind: str = "Deployment",
    ) -> None:
        self.create(
            "horizontalpodautoscalers",
            namespace,
            {
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                    "minReplicas": low,
                    "maxReplicas": high,
                },
            },
        )

    def add_service(self, namespace: str, name: str, selector: dict[str, str]) -> None:
        self.create(
            "services",
            namespace,
            {
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": 8080}]},
            },
        )

    def hold_unready(self, namespace: str, name: str) -> None:
        """From now on the workload's pods never become ready (its status says so at once, as
        a controller's status update would), until `unready` is cleared."""
        with self.lock:
            self.unready.add((namespace, name))
            for plural in WORKLOADS.values():
                current = self.objects.get((plural, namespace, name))
                if current is not None:
                    current["status"] = self._status(namespace, name, current)
                    self.version += 1
                    current["metadata"]["resourceVersion"] = str(self.version)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._load(plural, namespace, name))

    def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self._create(plural, namespace, copy.deepcopy(body), dry_run=False)

    def objects_of(self, plural: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(o) for (p, _, _), o in self.objects.items() if p == plural]

    def sent(self, method: str | None = None) -> list[Request]:
        """Requests that were not reads, or those of one method."""
        return [r for r in self.requests if (r.method == method if method else r.method != "GET")]

    # -- the API ---------------------------------------------------------------------------------
    def handle(self, request: Request) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append(request)
            try:
                self._authenticate(request)
                return self._route(request)
            except ApiError as exc:
                return exc.code, exc.status()

    def _authenticate(self, request: Request) -> None:
        if self.token is None:
            return
        scheme, _, credentials = (request.authorization or "").partition(" ")
        if scheme.lower() != "bearer" or credentials != self.token:
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _route(self, request: Request) -> tuple[int, dict[str, Any]]:
        document = discovery(request.path)
        if document is not None:
            if request.method != "GET":
                raise ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed")
            return 200, document
        namespace_object = self._namespace(request.path)
        if namespace_object is not None:
            return 200, namespace_object
        plural, namespace, name, sub = _parse(request.path)
        dry_run = request.query.get("dryRun") == ["All"]
        method = request.method
        if name is None:
            if method == "GET":
                return 200, self._list(plural, namespace, request.query)
            if method == "POST":
                return 201, self._create(plural, namespace, _body_dict(request), dry_run)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
        if method == "GET":
            current = self._load(plural, namespace, name)
            return 200, _scale_of(current) if sub == "scale" else current
        if method == "DELETE":
            self._load(plural, namespace, name)
            if not dry_run:
                del self.objects[(plural, namespace, name)]
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}
        if method in ("PUT", "PATCH"):
            return 200, self._write(request, plural, namespace, name, sub, dry_run)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed")

    def _write(
        self,
        request: Request,
        plural: str,
        namespace: str,
        name: str,
        sub: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        current = self._load(plural, namespace, name)
        base = _scale_of(current) if sub == "scale" else current
        if request.method == "PUT":
            updated = _body_dict(request)
        else:
            kind = PATCH_TYPES.get((request.content_type or "").split(";")[0].strip())
            if kind is None or kind == "apply":
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format: {request.content_type}",
                )
            updated = _patch(kind, copy.deepcopy(base), request.body)
        sent_version = (updated.get("metadata") or {}).get("resourceVersion")
        if sent_version and sent_version != base["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {plural} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
            )
        if sub == "scale":
            replicas = (updated.get("spec") or {}).get("replicas")
            _check_replicas(replicas, "spec.replicas")
            target = copy.deepcopy(current)
            target["spec"]["replicas"] = replicas
        else:
            target = updated
            target["metadata"] = {**current["metadata"], **_identity(updated.get("metadata") or {})}
        _validate(plural, target)
        stored = self._store(plural, namespace, name, current, target, dry_run)
        return _scale_of(stored) if sub == "scale" else stored

    def _namespace(self, path: str) -> dict[str, Any] | None:
        """`GET /api/v1/namespaces/NAME`: a namespace exists once an object lives in it."""
        parts = path.strip("/").split("/")
        if parts[:3] != ["api", "v1", "namespaces"] or len(parts) != 4:
            return None
        if not any(ns == parts[3] for _, ns, _ in self.objects):
            raise ApiError(404, "NotFound", f'namespaces "{parts[3]}" not found')
        return {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {"name": parts[3]},
            "status": {"phase": "Active"},
        }

    # -- state ------------------------------------------------------------------------------------
    def _load(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            return self.objects[(plural, namespace, name)]
        except KeyError:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found') from None

    def _list(self, plural: str, namespace: str, query: dict[str, list[str]]) -> dict[str, Any]:
        selector = _selector(query.get("labelSelector", [""])[0])
        items = [
            copy.deepcopy(o)
            for (p, ns, _), o in sorted(self.objects.items())
            if p == plural and ns == namespace and _matches(o, selector)
        ]
        _, kind, api_version = KINDS[plural]
        return {
            "kind": f"{kind}List",
            "apiVersion": api_version,
            "metadata": {"resourceVersion": str(self.version)},
            "items": items,
        }

    def _create(
        self, plural: str, namespace: str, body: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        name = (body.get("metadata") or {}).get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{plural}: metadata.name: Required value")
        if not isinstance(name, str) or len(name) > 253 or not _NAME.match(name):
            raise ApiError(
                422,
                "Invalid",
                f"{plural}: metadata.name: Invalid value: {name!r}: a lowercase "
                "RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            )
        if (plural, namespace, name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
        _, kind, api_version = KINDS[plural]
        body["kind"], body["apiVersion"] = kind, api_version
        body["metadata"] = {
            **body["metadata"],
            **({"namespace": namespace} if namespace else {}),
            "generation": 1,
            "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        body["metadata"]["uid"] = hashlib.sha1(f"{plural}/{namespace}/{name}".encode()).hexdigest()
        _validate(plural, body)
        return self._store(plural, namespace, name, None, body, dry_run)

    def _store(
        self,
        plural: str,
        namespace: str,
        name: str,
        before: dict[str, Any] | None,
        after: dict[str, Any],
        dry_run: bool,
    ) -> dict[str, Any]:
        if (
            before is not None
            and _spec(before) == _spec(after)
            and before.get("metadata", {}).get("annotations")
            == after.get("metadata", {}).get("annotations")
        ):
            return copy.deepcopy(before)  # a no-op write changes nothing, not even the version
        if before is not None and before.get("spec") != after.get("spec"):
            after["metadata"]["generation"] = before["metadata"].get("generation", 1) + 1
        if plural == "deployments":
            self._reconcile(namespace, name, before, after, dry_run)
        if plural == "statefulsets":
            after["status"] = self._status(namespace, name, after)
        if dry_run:
            after["metadata"]["resourceVersion"] = (before or after)["metadata"].get(
                "resourceVersion", str(self.version)
            )
            return copy.deepcopy(after)
        self.version += 1
        after["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(plural, namespace, name)] = after
        if plural == "horizontalpodautoscalers":
            self._autoscale(namespace, after)
        return copy.deepcopy(after)

    def _autoscale(self, namespace: str, hpa: dict[str, Any]) -> None:
        """The HPA controller, instantly: keep the target's replicas within [min, max]."""
        ref = hpa["spec"]["scaleTargetRef"]
        plural, target = WORKLOADS.get(ref.get("kind"), ""), ref["name"]
        current = self.objects.get((plural, namespace, target))
        if current is None:
            return
        low, high = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
        replicas = current["spec"].get("replicas", 1)
        wanted = min(max(replicas, low), high)
        if wanted != replicas:
            updated = copy.deepcopy(current)
            updated["spec"]["replicas"] = wanted
            self._store(plural, namespace, target, current, updated, dry_run=False)

    def _status(self, namespace: str, name: str, workload: dict[str, Any]) -> dict[str, Any]:
        """A workload controller's status, at once: every replica ready unless held."""
        replicas = workload["spec"].get("replicas", 1)
        ready = 0 if (namespace, name) in self.unready else replicas
        return {
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": ready,
            "observedGeneration": workload["metadata"].get("generation", 1),
        }

    def _reconcile(
        self,
        namespace: str,
        name: str,
        before: dict[str, Any] | None,
        after: dict[str, Any],
        dry_run: bool,
    ) -> None:
        """The deployment controller: ReplicaSet per template revision, status from spec."""
        replicas = after["spec"].get("replicas", 1)
        after["status"] = self._status(namespace, name, after)
        template = after["spec"]["template"]
        if before is not None and before["spec"]["template"] == template:
            return
        annotations = after["metadata"].setdefault("annotations", {})
        revision = (
            int((before or {}).get("metadata", {}).get("annotations", {}).get(REVISION, "0")) + 1
        )
        annotations[REVISION] = str(revision)
        if dry_run:
            return
        digest = hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        existing = self.objects.get(("replicasets", namespace, f"{name}-{digest}"))
        if existing is not None:  # back to an old template: its ReplicaSet gets the new revision
            existing["metadata"]["annotations"][REVISION] = str(revision)
            self.version += 1
            existing["metadata"]["resourceVersion"] = str(self.version)
            return
        self._create(
            "replicasets",
            namespace,
            {
                "metadata": {
                    "name": f"{name}-{digest}",
                    "labels": dict(template.get("metadata", {}).get("labels", {})),
                    "annotations": {REVISION: str(revision)},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": name,
                            "uid": after["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {
                    "replicas": replicas,
                    "selector": copy.deepcopy(after["spec"]["selector"]),
                    "template": copy.deepcopy(template),
                },
            },
            dry_run=False,
        )


class _Handler(BaseHTTPRequestHandler):
    kube: FakeKube
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        return

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        request = Request(
            self.command,
            url.path,
            parse_qs(url.query),
            self.headers.get("Content-Type"),
            body,
            self.headers.get("Authorization"),
        )
        code, payload = self.kube.handle(request)
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 (http.server names)


# -- discovery ------------------------------------------------------------------------------------
def discovery(path: str) -> dict[str, Any] | None:
    """The discovery document at `path` (what kubectl reads before anything else), if any."""
    path = "/" + path.strip("/")
    if path == "/version":
        return dict(SERVER_VERSION)
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    groups = sorted(
        {api_version for prefix, _, api_version in KINDS.values() if "/" in api_version}
    )
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group.split("/")[0],
                    "versions": [{"groupVersion": group, "version": group.split("/")[1]}],
                    "preferredVersion": {"groupVersion": group, "version": group.split("/")[1]},
                }
                for group in groups
            ],
        }
    served = [(plural, kind) for plural, (prefix, kind, _) in KINDS.items() if prefix == path]
    if not served:
        return None
    group_version = path.removeprefix("/apis/").removeprefix("/api/")
    verbs = ["create", "delete", "get", "list", "patch", "update"]
    resources: list[dict[str, Any]] = []
    for plural, kind in served:
        resources.append(
            {
                "name": plural,
                "singularName": kind.lower(),
                "namespaced": plural not in CLUSTER_SCOPED,
                "kind": kind,
                "verbs": verbs,
                "shortNames": SHORT_NAMES.get(plural, []),
            }
        )
        if plural in SCALABLE:
            resources.append(
                {
                    "name": f"{plural}/scale",
                    "singularName": "",
                    "namespaced": True,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


# -- helpers --------------------------------------------------------------------------------------
def serve_in_thread(
    handler: type[BaseHTTPRequestHandler], *, tls: tuple[Path, Path] | None = None
) -> tuple[ThreadingHTTPServer, str]:
    """A threaded HTTP server on a free loopback port, serving in a daemon thread; its URL.
    With `tls` (certificate and key files) it serves HTTPS."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


def stop_serving(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


def _workload(namespace: str, name: str, replicas: int, image: str) -> dict[str, Any]:
    """A Deployment's or StatefulSet's body: one container, selected by `app=<name>`."""
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
    }


def _parse(path: str) -> tuple[str, str, str | None, str | None]:
    """(plural, namespace, name, subresource); the namespace is "" for cluster-scoped kinds."""
    parts = path.strip("/").split("/")
    try:
        index = parts.index("namespaces")
    except ValueError:
        index = 3 if parts[:1] == ["apis"] else 2  # /apis/GROUP/VERSION/... or /api/v1/...
        if len(parts) <= index or parts[index] not in CLUSTER_SCOPED:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource {path}"
            ) from None
        parts = [*parts[:index], "namespaces", "", *parts[index:]]
    rest = parts[index + 1 :]
    if len(rest) < 2 or rest[1] not in KINDS:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")
    prefix = "/" + "/".join(parts[:index])
    if prefix != KINDS[rest[1]][0]:
        raise ApiError(404, "NotFound", f"{rest[1]} is not served under {prefix}")
    namespace, plural = rest[0], rest[1]
    name = rest[2] if len(rest) > 2 else None
    sub = rest[3] if len(rest) > 3 else None
    if sub not in (None, "scale") or (sub == "scale" and plural not in SCALABLE):
        raise ApiError(404, "NotFound", f"subresource {sub!r} not found")
    return plural, namespace, name, sub


def _body_dict(request: Request) -> dict[str, Any]:
    if not isinstance(request.body, dict):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object")
    return copy.deepcopy(request.body)


def _identity(metadata: dict[str, Any]) -> dict[str, Any]:
    """What a write may change in metadata (labels, annotations; not name or uid)."""
    return {k: v for k, v in metadata.items() if k in ("labels", "annotations", "resourceVersion")}


def _spec(obj: dict[str, Any]) -> Any:
    return obj.get("spec")


def _scale_of(deployment: dict[str, Any]) -> dict[str, Any]:
    meta = deployment["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "resourceVersion": meta.get("resourceVersion"),
        },
        "spec": {"replicas": deployment["spec"].get("replicas", 1)},
        "status": {"replicas": deployment.get("status", {}).get("replicas", 0)},
    }


def _check_replicas(value: Any, field: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ApiError(
            422, "Invalid", f"{field}: Invalid value: {value!r}: must be greater than or equal to 0"
        )


def _validate(plural: str, obj: dict[str, Any]) -> None:
    spec = obj.get("spec") or {}
    if plural in ("deployments", "replicasets", "statefulsets"):
        _check_replicas(spec.get("replicas", 1), "spec.replicas")
        containers = spec.get("template", {}).get("spec", {}).get("containers")
        if not containers:
            raise ApiError(422, "Invalid", "spec.template.spec.containers: Required value")
    if plural == "horizontalpodautoscalers":
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
        _check_replicas(low, "spec.minReplicas")
        if not isinstance(high, int) or high < max(low, 1):
            raise ApiError(
                422, "Invalid", f"spec.maxReplicas: Invalid value: {high!r}: must be >= minReplicas"
            )
    if plural == "services" and not isinstance(spec.get("selector", {}), dict):
        raise ApiError(422, "Invalid", "spec.selector: must be a map")
    _validate_more(plural, obj)


def _invalid(field: str, value: Any, why: str) -> ApiError:
    return ApiError(422, "Invalid", f"{field}: Invalid value: {value!r}: {why}")


def _validate_more(plural: str, obj: dict[str, Any]) -> None:
    """The API server's checks on the kinds of deploy/ that a manifest can get wrong."""
    spec = obj.get("spec") or {}
    if plural in ("configmaps", "secrets"):
        for key in ("data", "stringData"):
            for name, value in (obj.get(key) or {}).items():
                if not isinstance(value, str):
                    raise _invalid(f"{key}[{name}]", value, "must be a string")
    if plural in ("clusterroles",):
        for i, rule in enumerate(obj.get("rules") or []):
            if not rule.get("verbs"):
                raise ApiError(422, "Invalid", f"rules[{i}].verbs: Required value")
            if "apiGroups" not in rule or not rule.get("resources"):
                raise ApiError(422, "Invalid", f"rules[{i}].resources: Required value")
    if plural == "clusterrolebindings":
        ref = obj.get("roleRef") or {}
        if ref.get("kind") not in ("Role", "ClusterRole") or not ref.get("name"):
            raise _invalid("roleRef", ref, "kind Role or ClusterRole and a name are required")
    if plural == "poddisruptionbudgets":
        if ("minAvailable" in spec) == ("maxUnavailable" in spec):
            raise _invalid("spec", spec, "exactly one of minAvailable and maxUnavailable")
        if not spec.get("selector"):
            raise ApiError(422, "Invalid", "spec.selector: Required value")
    if plural == "networkpolicies" and "podSelector" not in spec:
        raise ApiError(422, "Invalid", "spec.podSelector: Required value")
    if plural == "servicemonitors" and not (spec.get("endpoints") and "selector" in spec):
        raise ApiError(422, "Invalid", "spec.endpoints and spec.selector: Required value")
    if plural == "httproutes":
        _check_httproute(spec)
    if plural == "virtualservices":
        _check_virtualservice(spec)
    if plural == "backendtrafficpolicies":
        _check_backendtrafficpolicy(spec)
    if plural == "prometheusrules":
        for group in spec.get("groups") or []:
            for rule in group.get("rules") or []:
                if not rule.get("expr") or ("alert" in rule) == ("record" in rule):
                    raise _invalid("spec.groups.rules", rule, "one of alert or record, and expr")


def _check_httproute(spec: dict[str, Any]) -> None:
    """What the HTTPRoute CRD's schema allows (gateway.networking.k8s.io/v1): backendRefs
    name a backend, weights are integers from 0 to 1,000,000."""
    for i, rule in enumerate(spec.get("rules") or []):
        for j, ref in enumerate(rule.get("backendRefs") or []):
            where = f"spec.rules[{i}].backendRefs[{j}]"
            if not ref.get("name"):
                raise ApiError(422, "Invalid", f"{where}.name: Required value")
            weight = ref.get("weight", 1)
            if not isinstance(weight, int) or not 0 <= weight <= 1_000_000:
                raise _invalid(f"{where}.weight", weight, "an integer from 0 to 1000000")


def _check_virtualservice(spec: dict[str, Any]) -> None:
    """What Istio validates of a VirtualService's HTTP routes: each destination has a host,
    weights are integers from 0 to 100, and several destinations' weights add up to 100."""
    for i, http in enumerate(spec.get("http") or []):
        routes = http.get("route") or []
        for j, route in enumerate(routes):
            where = f"spec.http[{i}].route[{j}]"
            if not (route.get("destination") or {}).get("host"):
                raise ApiError(422, "Invalid", f"{where}.destination.host: Required value")
            weight = route.get("weight", 0)
            if not isinstance(weight, int) or not 0 <= weight <= 100:
                raise _invalid(f"{where}.weight", weight, "an integer from 0 to 100")
        if len(routes) > 1 and sum(r.get("weight", 0) for r in routes) != 100:
            raise _invalid(f"spec.http[{i}].route", routes, "weights must add up to 100")


def _check_backendtrafficpolicy(spec: dict[str, Any]) -> None:
    """What Envoy Gateway's CRD schema allows of local rate limits: rateLimit.type Local or
    Global; each rule's limit has integer requests and a known unit; a sourceCIDR selector
    is of type Exact or Distinct with a CIDR value."""
    limit = spec.get("rateLimit")
    if limit is None:
        return
    if limit.get("type") not in ("Local", "Global"):
        raise _invalid("spec.rateLimit.type", limit.get("type"), "Local or Global")
    for i, rule in enumerate((limit.get("local") or {}).get("rules") or []):
        where = f"spec.rateLimit.local.rules[{i}]"
        requests, unit = (
            (rule.get("limit") or {}).get("requests"),
            (rule.get("limit") or {}).get("unit"),
        )
        if not isinstance(requests, int) or requests < 0:
            raise _invalid(f"{where}.limit.requests", requests, "a non-negative integer")
        if unit not in ("Second", "Minute", "Hour", "Day", "Month", "Year"):
            raise _invalid(f"{where}.limit.unit", unit, "Second, Minute, Hour, Day, Month or Year")
        for j, selector in enumerate(rule.get("clientSelectors") or []):
            cidr = selector.get("sourceCIDR")
            if cidr is None:
                continue
            if cidr.get("type", "Exact") not in ("Exact", "Distinct"):
                raise _invalid(f"{where}.clientSelectors[{j}].sourceCIDR.type", cidr.get("type"),
                               "Exact or Distinct")  # fmt: skip
            try:
                ipaddress.ip_network(str(cidr.get("value")), strict=False)
            except ValueError:
                raise _invalid(f"{where}.clientSelectors[{j}].sourceCIDR.value",
                               cidr.get("value"), "a CIDR") from None  # fmt: skip


def _selector(text: str) -> dict[str, str]:
    pairs = [p.split("=", 1) for p in text.split(",") if p]
    return {k.strip(): v.strip() for k, v in pairs}


def _matches(obj: dict[str, Any], selector: dict[str, str]) -> bool:
    labels = obj.get("metadata", {}).get("labels", {})
    return all(labels.get(k) == v for k, v in selector.items())


def _patch(kind: str, base: dict[str, Any], patch: Any) -> dict[str, Any]:
    if kind == "json":
        if not isinstance(patch, list):
            raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
        return _json_patch(base, patch)
    if not isinstance(patch, dict):
        raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
    merged: dict[str, Any] = _merge(base, patch, strategic=kind == "strategic")
    return merged


def _merge(base: Any, patch: Any, *, strategic: bool) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif strategic and isinstance(value, list) and _named(value) and _named(out.get(key)):
            out[key] = _merge_named(out[key], value)
        else:
            out[key] = _merge(out.get(key), value, strategic=strategic)
    return out


def _named(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(i, dict) and "name" in i for i in items)


def _merge_named(base: list[dict[str, Any]], patch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Strategic merge of lists keyed by `name` (containers, ports, env)."""
    out = [copy.deepcopy(i) for i in base]
    for item in patch:
        index = next((n for n, i in enumerate(out) if i["name"] == item["name"]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
        elif index is None:
            out.append(copy.deepcopy(item))
        else:
            out[index] = _merge(out[index], item, strategic=True)
    return out


def _json_patch(doc: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    for op in operations:
        path = [p.replace("~1", "/").replace("~0", "~") for p in op.get("path", "").split("/")[1:]]
        if not path:
            raise ApiError(422, "Invalid", f"json patch: bad path {op.get('path')!r}")
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = path[-1]
        kind = op.get("op")
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise ApiError(422, "Invalid", f"json patch test failed at {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, op["value"])
                else:
                    parent[index] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise ApiError(422, "Invalid", f"json patch replace: no value at {op['path']}")
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            elif parent.pop(last, None) is None:
                raise ApiError(422, "Invalid", f"json patch remove: no value at {op['path']}")
        else:
            raise ApiError(422, "Invalid", f"json patch: unsupported op {kind!r}")
    return doc
