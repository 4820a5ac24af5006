"""`aiops demo`: the whole loop on embedded defaults, for a newcomer.

Starts the API (SQLite in `data_dir`), the console, a real Alertmanager routed to the
webhook, the live shop (metrics scraped by a real Prometheus, traces sent through the
OpenTelemetry SDK) and the Kubernetes stand-in, then plays the bundled scenario
(`scenario.yaml`) once (or `cycles` times): alerts fire and resolve through Alertmanager,
incidents appear and resolve in the console; then it stays up, quiet, until Ctrl-C. Without an
Alertmanager binary the same alerts are delivered straight to the webhook, and it says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from controlplane import auth
from controlplane.api import create_app
from controlplane.capacity.job import CapacityJob
from controlplane.config import Settings, load_settings
from controlplane.demo import capacity
from controlplane.demo.shop import LiveShop
from controlplane.demo.traffic import ShopTraffic
from controlplane.domain.errors import ConfigError
from controlplane.domain.models import Role
from controlplane.policy.runner import shipped_policies
from controlplane.storage import Database, upgrade
from controlplane.testing.kube import FakeKube
from controlplane.testing.oncall import GRAFANA_TOKEN, OnCallServices
from controlplane.testing.servers import Alertmanager, ApiServer, Console, Prometheus

SCENARIO = Path(__file__).with_name("scenario.yaml")
# Firing alerts are re-pushed this often: Alertmanager resolves an alert it has not heard
# of for resolve_timeout (5 min), as it would for a Prometheus that stopped sending it.
REPUSH_SECONDS = 30
#: The shop's deployments in the Kubernetes stand-in, with their replicas.
SHOP = {"checkout": 3, "payments": 2, "search": 2, "inventory": 2}
#: How long a credential-stuffing client hammers the shop's login at the start (a security
#: incident opens within the scanner's minute; policies leave it to people).
ATTACK_SECONDS = 180
#: The storefront's two zones: Services behind the `frontend` HTTPRoute.
ZONES = ("frontend-a", "frontend-b")
#: What one replica requests, and what that costs (the Cost page prices every scale plan:
#: 0.5 core x 0.04 + 1 GiB x 0.005 = 0.025 EUR a replica-hour). Automation may add 500 EUR
#: a month to the shop with a person's yes, and nothing past 0.02 EUR/h to inventory (its
#: database, not its pods, fills up), so the forecast's pre-scale of inventory is refused.
REQUESTS = {"cpu": "500m", "memory": "1Gi"}
COST = {
    "currency": "EUR",
    "cpu_core_hour": 0.04,
    "memory_gib_hour": 0.005,
    "budgets": [
        {"name": "shop", "namespace": "shop", "per_month": 500, "over": "approval"},
        {"name": "inventory", "namespace": "shop", "workload": "inventory", "per_hour": 0.02},
    ],
}


class ScenarioAlert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    service: str
    severity: str
    pod: str
    summary: str
    at: float = Field(ge=0)
    until: float

    @model_validator(mode="after")
    def _ends_after_start(self) -> ScenarioAlert:
        if self.until <= self.at:
            raise ValueError(f"until must be after at, got at={self.at} until={self.until}")
        return self


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cycle_seconds: float = Field(gt=0)
    alerts: list[ScenarioAlert] = Field(min_length=1)

    @classmethod
    def load(cls, path: Path = SCENARIO) -> Scenario:
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()))
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(f"demo scenario {path.name}: {exc}") from None


def run_demo(
    *, data_dir: Path, api_port: int, console_port: int, alertmanager_port: int, cycles: int = 1
) -> None:
    scenario = Scenario.load()
    # `kill`, systemd and CI stop with SIGTERM: clean up the children as on Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    if data_dir.exists():
        shutil.rmtree(data_dir)  # the demo always starts from an empty store
    data_dir.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        running = backends(stack, data_dir)
        settings = load_settings(
            database={"url": f"sqlite:///{data_dir.resolve() / 'aiops.db'}"},
            api={"port": api_port},
            console={"port": console_port},
            incidents={"group_by": "service"},
            alertmanager={"url": f"http://127.0.0.1:{alertmanager_port}"},
            **running.sections,
        )
        ports = (api_port, console_port, alertmanager_port)
        _serve(settings, running.shop, scenario, data_dir, ports, cycles)


def _serve(
    settings: Settings,
    shop: LiveShop,
    scenario: Scenario,
    data_dir: Path,
    ports: tuple[int, int, int],
    cycles: int,
) -> None:
    api_port, console_port, alertmanager_port = ports
    upgrade(settings.database.url)
    db = Database(settings.database.url)
    with db.write() as session:
        _, admin = auth.create_token(session, "demo-admin", Role.ADMIN, actor="demo")
        _, webhook = auth.create_token(session, "demo-alertmanager", Role.WEBHOOK, actor="demo")

    with (
        ApiServer(create_app(settings, db), port=api_port) as api,
        Console(settings, port=console_port, log=data_dir / "console.log") as console,
        _alert_sink(data_dir, api.url, webhook, alertmanager_port) as sink,
        ShopTraffic(f"{api.url}/v1/traces", webhook, shop.latency, attack_seconds=ATTACK_SECONDS),
    ):
        am_url = sink.url if isinstance(sink, Alertmanager) else None
        k8s = settings.automation.kubernetes.host
        kube = f"{k8s} (stand-in)" if k8s else "KUBECONFIG, dry run only"
        _print_banner(
            api.url, console.url, am_url, admin, webhook, settings.prometheus.url, kube,
            oncall_url(settings),
        )  # fmt: skip
        if settings.capacity.signals:  # the first report now; then hourly, on the schedule
            job = CapacityJob(settings, db)
            threading.Thread(target=job.run, args=("demo", "demo"), daemon=True).start()
        try:
            _play(scenario, sink.post_alerts, cycles)
            print("\nthe story is over: the demo stays up (approve, explore) until Ctrl-C")
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nstopping...")
    db.dispose()


class _DirectSink:
    """No Alertmanager here: build its version-4 notifications ourselves, one per service.
    Offers the same `post_alerts` as `servers.Alertmanager`, so `_play` cannot tell them apart."""

    def __init__(self, webhook_url: str, token: str) -> None:
        self.url, self.token = webhook_url, token

    def __enter__(self) -> _DirectSink:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        for service in sorted({a["labels"]["service"] for a in alerts}):
            group = [a for a in alerts if a["labels"]["service"] == service]
            body = [
                {
                    "status": _state(a),
                    "labels": a["labels"],
                    "annotations": a["annotations"],
                    "startsAt": a["startsAt"],
                    "endsAt": a.get("endsAt", "0001-01-01T00:00:00Z"),
                    "generatorURL": a["generatorURL"],
                    "fingerprint": hashlib.sha256(
                        json.dumps(a["labels"], sort_keys=True).encode()
                    ).hexdigest()[:16],
                }
                for a in group
            ]
            httpx.post(
                self.url,
                headers={"Authorization": f"Bearer {self.token}"},
                json={
                    "version": "4",
                    "receiver": "aiops",
                    "alerts": body,
                    "status": "firing" if any(_state(a) == "firing" for a in group) else "resolved",
                    "groupLabels": {"service": service},
                    "commonLabels": {"service": service},
                    "commonAnnotations": {},
                    "externalURL": "demo",
                    "truncatedAlerts": 0,
                    "groupKey": f'{{}}:{{service="{service}"}}',
                },
                timeout=10,
            )


def oncall_url(settings: Settings) -> str:
    """Where the demo's loopback Slack, PagerDuty and Grafana listen (from its notifications)."""
    file = settings.notifications.file
    if file is None:
        return "nowhere"
    grafana = yaml.safe_load(file.read_text())["channels"]["grafana"]["url"]
    return str(grafana).removesuffix("/grafana")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@dataclass
class Backends:
    """What the demo runs beside the control plane, and the settings sections that point at
    it (`automation`; `prometheus`, `detection` and `capacity` when Prometheus runs)."""

    cluster: FakeKube | None
    shop: LiveShop
    prometheus: Prometheus | None
    oncall: OnCallServices
    sections: dict[str, Any]


def backends(stack: contextlib.ExitStack, workdir: Path) -> Backends:
    """The Kubernetes stand-in (or $KUBECONFIG in dry run), the live shop, and a real
    Prometheus holding two weeks of the shop's history and scraping the shop from now on."""
    automation, cluster = _automation(stack)
    end = datetime.now(UTC).replace(second=0, microsecond=0)

    def replicas(name: str) -> int | None:
        if cluster is None:
            return SHOP.get(name)
        return int(cluster.get("deployments", "shop", name)["spec"].get("replicas", 1))

    def zone_b_share() -> float:
        if cluster is None:
            return 0.0
        (rule,) = cluster.get("httproutes", "shop", "frontend")["spec"]["rules"]
        weights = {b["name"]: int(b.get("weight", 1)) for b in rule["backendRefs"]}
        return weights["frontend-b"] / max(1, sum(weights.values()))

    shop = stack.enter_context(LiveShop(replicas, history_end=end, zone_b_share=zone_b_share))
    try:
        server = Prometheus(
            workdir / "prometheus", history=capacity.history(end), scrape=[shop.target]
        )
        prometheus: Prometheus | None = stack.enter_context(server)
    except ConfigError as exc:
        print(f"note: {exc}\n      the demo runs without detection, verification and forecasts.")
        prometheus = None
    oncall = stack.enter_context(OnCallServices())
    sections: dict[str, Any] = {
        "automation": automation,
        **_notifications(oncall.url, workdir),
        "cost": COST,
        "security": {"enabled": True},
    }
    if prometheus is not None:
        sections.update(capacity.settings(prometheus.url))
        sections["detection"]["state_dir"] = str(workdir.resolve() / "detector-state")
    return Backends(cluster, shop, prometheus, oncall, sections)


def _notifications(oncall_url: str, workdir: Path) -> dict[str, Any]:
    """Who the demo tells what: the README's worked notifications file, pointed at loopback
    stand-ins of Slack, PagerDuty and Grafana (see the console's On-call page)."""
    channels = {
        "oncall-slack": {
            "type": "slack_webhook",
            "url": f"{oncall_url}/slack/webhook/T0DEMO/B0DEMO/demo",
        },
        "pager": {
            "type": "pagerduty",
            "routing_key": "DEMO" * 8,
            "url": f"{oncall_url}/pagerduty",
        },
        "grafana": {
            "type": "grafana_annotation",
            "url": f"{oncall_url}/grafana",
            "token": GRAFANA_TOKEN,
        },
    }
    actions = ["action.executed", "action.verified", "action.failed", "action.rolled_back"]
    routes = [
        {
            "name": "incidents",
            "events": ["incident.opened", "incident.resolved"],
            "channels": ["oncall-slack"],
            "group_seconds": 10,
        },
        {
            "name": "page-critical",
            "events": ["incident.opened", "incident.acknowledged", "incident.resolved"],
            "severities": ["critical"],
            "channels": ["pager"],
        },
        {
            "name": "approvals",
            "events": ["approval.waiting"],
            "channels": ["oncall-slack"],
            "escalate_after_minutes": 15,
            "escalate_to": ["pager"],
        },
        {
            "name": "automation",
            "events": [*actions, "automation.paused", "automation.resumed"],
            "channels": ["oncall-slack"],
        },
        {"name": "annotate", "events": ["action.executed"], "channels": ["grafana"]},
    ]
    path = workdir.resolve() / "notifications.yaml"
    path.write_text(yaml.safe_dump({"channels": channels, "routes": routes}, sort_keys=False))
    return {
        "notifications": {
            "file": str(path),
            "link_secret": secrets.token_hex(32),
            "interval_seconds": 1,
        }
    }


def _automation(stack: contextlib.ExitStack) -> tuple[dict[str, Any], FakeKube | None]:
    """The shipped shop policies, against a real cluster in dry run when KUBECONFIG is set,
    else against the Kubernetes stand-in holding the shop's deployments."""
    policies = {"policies_dir": str(shipped_policies()), "interval_seconds": 0.5}
    if load_settings().automation.kubernetes.kubeconfig is not None:  # $KUBECONFIG
        return {**policies, "dry_run_only": True}, None
    cluster = stack.enter_context(FakeKube())
    for name, replicas in SHOP.items():
        cluster.add_deployment(
            "shop", name, replicas=replicas, image=f"shop/{name}:1.0", requests=REQUESTS
        )
    cluster.roll_out("shop", "payments", "shop/payments:1.1")  # the release that went wrong
    cluster.add_deployment("shop", "checkout-standby", replicas=2, image="shop/checkout:1.0")
    cluster.add_service("shop", "checkout", {"app": "checkout"})
    cluster.add_hpa("shop", "search", target="search", low=2, high=6)
    for zone in ZONES:  # the storefront, in two zones behind one route (all to zone a)
        cluster.add_service("shop", zone, {"app": "frontend", "zone": zone[-1]})
    cluster.add_httproute("shop", "frontend", {"frontend-a": 100, "frontend-b": 0})
    return {**policies, "kubernetes": {"host": cluster.url}}, cluster


def _alert_sink(data_dir: Path, api_url: str, token: str, port: int) -> Alertmanager | _DirectSink:
    webhook = f"{api_url}/api/v1/webhooks/alertmanager"
    try:
        return Alertmanager(
            data_dir / "alertmanager",
            webhook_url=webhook,
            token=token,
            port=port,
            group_by=("service",),
        )
    except ConfigError as exc:
        print(f"note: {exc}\n      delivering the scenario straight to the webhook instead.")
        return _DirectSink(webhook, token)


def _play(scenario: Scenario, push: Callable[[list[dict[str, Any]]], None], cycles: int) -> None:
    cycle = 0
    while cycles == 0 or cycle < cycles:
        start = datetime.now(UTC)
        began = time.monotonic()
        last_push: dict[int, float] = {}
        resolved: set[int] = set()
        while (elapsed := time.monotonic() - began) < scenario.cycle_seconds:
            batch = []
            for n, alert in enumerate(scenario.alerts):
                if (
                    alert.at <= elapsed < alert.until
                    and elapsed - last_push.get(n, -REPUSH_SECONDS) >= REPUSH_SECONDS
                ):
                    batch.append(_am_alert(alert, start, ends=None))
                    last_push[n] = elapsed
                elif elapsed >= alert.until and n in last_push and n not in resolved:
                    batch.append(
                        _am_alert(alert, start, ends=start + timedelta(seconds=alert.until))
                    )
                    resolved.add(n)
            if batch:
                push(batch)
                for a in batch:
                    print(
                        f"  [{elapsed:5.0f}s] {_state(a):8} {a['labels']['alertname']:16} "
                        f"{a['labels']['service']}"
                    )
            time.sleep(0.5)
        cycle += 1


def _state(alert: dict[str, Any]) -> str:
    """Scenario alerts carry an endsAt only once they are resolved."""
    return "resolved" if "endsAt" in alert else "firing"


def _am_alert(alert: ScenarioAlert, cycle_start: datetime, ends: datetime | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "labels": {
            "alertname": alert.name,
            "service": alert.service,
            "pod": alert.pod,
            "severity": alert.severity,
            "namespace": "shop",
        },
        "annotations": {"summary": alert.summary},
        "startsAt": (cycle_start + timedelta(seconds=alert.at)).isoformat(),
        "generatorURL": "http://127.0.0.1:9090/graph",
    }
    if ends is not None:
        body["endsAt"] = ends.isoformat()
    return body


def _print_banner(
    api: str,
    console: str,
    am: str | None,
    admin: str,
    webhook: str,
    prometheus: str,
    kube: str,
    oncall: str,
) -> None:
    print(f"""
AIOps control plane demo (Ctrl-C stops everything)
  console       {console}   sign in with the admin token below
  API           {api}/docs
  metrics       {api}/metrics
  Alertmanager  {am or "not installed: alerts go straight to the webhook"}
  Prometheus    {prometheus or "not installed: no capacity forecasts"}
  Kubernetes    {kube}
  on-call       {oncall} (loopback Slack, PagerDuty, Grafana; see On-call in the console)
  reports       {api}/api/v1/reports (capacity forecasts, first one within a minute)
  decisions     {api}/api/v1/decisions (policies in runbooks/policies; approve in the console)

  admin token   {admin}
  webhook token {webhook}   (Alertmanager uses it)

Playing the bundled scenario:""")
