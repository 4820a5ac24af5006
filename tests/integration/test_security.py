"""Security detection on a labelled scenario generated with the OpenTelemetry SDK and sent
as OTLP to the real API: an hour of 40 ordinary clients (some mistyping a password, one busy
office behind a NAT), after an hour of them that tells which routes the shop serves, with five
attacks hidden in it: credential stuffing, a scraper, a slow brute force, a scanner probing
for paths the shop does not serve, and a botnet of 30 addresses trying logins, each slowly.
Precision and recall are per attack, and printed; they are in-sample: the thresholds were
chosen knowing what this scenario contains (not fitted on it, not held out). Then: the
findings are incidents of source `security`, and a policy without `match.source: [security]`
does not act on them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from sqlalchemy import select

from controlplane.api import create_app
from controlplane.config import load_settings
from controlplane.detection.security import SecurityScanner
from controlplane.policy.guardrails import IncidentView, matches
from controlplane.policy.runner import PolicyRunner
from controlplane.policy.schema import Policy
from controlplane.storage.models import AccessPointRow, DecisionRow, IncidentRow
from controlplane.testing.kube import FakeKube
from controlplane.testing.servers import ApiServer
from tests.factories import WEBHOOK_TOKEN

pytestmark = pytest.mark.integration

START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=61)
#: (kind, who): a client, or `distributed` and the route for the botnet.
ATTACKS = {
    ("credential_stuffing", "203.0.113.7"),
    ("scraper", "198.51.100.23"),
    ("slow_brute_force", "192.0.2.99"),
    ("probing", "192.0.2.150"),
    ("auth_attack", "distributed /login"),
}
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
PAGES = ["/", "/cart", "/checkout", "/search", "/account"]
#: What a vulnerability scanner asks for: paths the shop has no route for.
PROBES = [
    "/.env", "/.git/config", "/wp-login.php", "/wp-admin/", "/phpmyadmin/", "/server-status",
    "/actuator/env", "/config.json", "/backup.zip", "/admin.php", "/.aws/credentials",
    "/vendor/phpunit/", "/cgi-bin/test.cgi", "/debug/pprof/",
]  # fmt: skip
#: (minute from START, client, path, http.route or None, user agent, status)
Request = tuple[int, str, str, str | None, str, int]


def ordinary(rng: random.Random, minute: int, clients: list[str]) -> list[Request]:
    out: list[Request] = []
    for client in clients:
        for _ in range(rng.randint(0, 4)):
            if rng.random() < 0.3:
                n = rng.randint(1, 400)
                out.append((minute, client, f"/products/{n}", "/products/{id}", BROWSER, 200))
            else:
                page = rng.choice(PAGES)
                out.append((minute, client, page, page, BROWSER, 200))
    return out


def requests(rng: random.Random) -> list[Request]:
    """The hour before (ordinary clients only), then the hour."""
    people = [f"10.0.0.{n}" for n in range(1, 41)]
    out = [r for minute in range(-60, 0) for r in ordinary(rng, minute, people)]
    for minute in range(60):
        out += ordinary(rng, minute, people)
        for _ in range(15):  # a busy office behind one address: many requests, few pages
            page = rng.choice(PAGES[:4])
            out.append((minute, "10.1.0.1", page, page, BROWSER, 200))
        if 20 <= minute < 25:  # credential stuffing: 40 refused logins a minute
            out += [(minute, "203.0.113.7", "/login", "/login", "python-requests/2.32", 401)] * 40
        bot = "Mozilla/5.0 (compatible; ShopBot/1.0)"
        for _ in range(20):  # a scraper walking the catalogue
            path = f"/products/{rng.randint(1, 5000)}"
            out.append((minute, "198.51.100.23", path, "/products/{id}", bot, 200))
        if 10 <= minute < 55:  # a slow brute force: one refused login a minute
            out.append((minute, "192.0.2.99", "/login", "/login", BROWSER, 401))
        if minute == 35:  # a scanner: no framework route matches, so no http.route
            out += [(35, "192.0.2.150", path, None, "zgrab/0.x", 404) for path in PROBES]
        if 40 <= minute < 50:  # a botnet: 30 addresses, 2 refused logins a minute each
            out += [(minute, f"198.18.0.{n}", "/login", "/login", BROWSER, 401)
                    for n in range(1, 31) for _ in range(2)]  # fmt: skip
    for client in ("10.0.0.3", "10.0.0.17"):  # people mistyping their password
        out += [(30, client, "/login", "/login", BROWSER, 401)] * 5
        out += [(31, client, "/login", "/login", BROWSER, 200)]
    return out


def send(api_url: str, traffic: list[Request]) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-web"}))
    exporter = OTLPSpanExporter(
        endpoint=f"{api_url}/v1/traces", headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    )
    # A queue for the whole scenario: the default (2,048) drops what does not fit.
    batches = BatchSpanProcessor(exporter, max_queue_size=len(traffic), max_export_batch_size=512)
    provider.add_span_processor(batches)
    tracer = provider.get_tracer("scenario")
    for minute, client, path, route, agent, status in traffic:
        start = int((START + timedelta(minutes=minute, seconds=30)).timestamp() * 1e9)
        attributes = {
            "http.request.method": "GET",
            "url.path": path,
            "http.response.status_code": status,
            "client.address": client,
            "user_agent.original": agent,
            **({"http.route": route} if route else {}),
        }
        span = tracer.start_span(
            f"GET {route or path}", kind=SpanKind.SERVER, start_time=start, attributes=attributes
        )
        span.end(end_time=start + 20_000_000)
    assert provider.force_flush(60_000)
    provider.shutdown()


def test_attackers_are_found_among_ordinary_clients(settings, db, capsys):
    config = load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        auth={"webhook_token": WEBHOOK_TOKEN},
        security={"enabled": True},
    )
    traffic = requests(random.Random(7))
    with ApiServer(create_app(config.model_copy(update={"security": config.security.model_copy(
            update={"enabled": False})}), db)) as api:  # fmt: skip
        send(api.url, traffic)
    scanner = SecurityScanner(config, db, clock=lambda: START + timedelta(minutes=61))
    found = scanner.scan()
    flagged = {(f.kind, f"{f.client} {f.route}".strip()) for f in found}
    hits = flagged & ATTACKS
    precision = len(hits) / len(flagged) if flagged else 0.0
    recall = len(hits) / len(ATTACKS)
    clients = len({c for m, c, *_ in traffic if m >= 0})
    with capsys.disabled():
        print(
            f"\nsecurity scenario: {sum(m >= 0 for m, *_ in traffic)} requests from {clients} "
            f"clients; flagged {sorted(flagged)}; precision {precision:.2f}, recall {recall:.2f}"
        )
    assert flagged == ATTACKS  # each attack found, as what it is, and nothing else
    with db.read() as session:
        incidents = session.scalars(select(IncidentRow)).all()
    assert {i.source for i in incidents} == {"security"}
    assert {i.labels["client"] for i in incidents} == {who.split()[0] for _, who in ATTACKS}
    critical = {i.labels["client"] for i in incidents if i.severity == "critical"}
    assert critical == {"203.0.113.7", "distributed"}
    assert scanner.scan()  # a second scan finds the same: no new incident
    with db.read() as session:
        assert len(session.scalars(select(IncidentRow)).all()) == len(ATTACKS)

    scale = Policy.model_validate(
        {"name": "scale", "match": {"service": ["shop-web"]},
         "action": {"type": "scale_deployment", "deployment": "web", "by": 2}}
    )  # fmt: skip
    rate_limit = scale.model_copy(update={"match": scale.match.model_copy(
        update={"source": ["security"]})})  # fmt: skip
    attack = IncidentView(1, "security", "shop-web", "critical", {"alertname": "SecurityScraper"})
    assert not matches(scale, attack)  # no scale-out in answer to an attack ...
    assert matches(rate_limit, attack)  # ... unless a policy says so


def test_the_scan_resolves_what_stopped(settings, db):
    config = load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        security={"enabled": True, "window_minutes": 10},
    )
    with db.write() as session:
        for minute in range(3):
            session.add(AccessPointRow(service="web", route="/login", client="203.0.113.7",
                                       minute=START + timedelta(minutes=minute), requests=30,
                                       denied=30, throttled=0, user_agent="x"))  # fmt: skip
    now = [START + timedelta(minutes=4)]
    scanner = SecurityScanner(config, db, clock=lambda: now[0])
    assert [f.kind for f in scanner.scan()] == ["credential_stuffing"]
    now[0] = START + timedelta(minutes=30)  # out of the window: over
    assert scanner.scan() == []
    with db.read() as session:
        (incident,) = session.scalars(select(IncidentRow)).all()
    assert incident.status == "resolved"


def test_the_scan_forgets_access_records_past_keep_days(settings, db):
    config = load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        security={"enabled": True, "keep_days": 8},
    )
    with db.write() as session:
        for days in (9, 7):
            session.add(AccessPointRow(service="web", route="/", client="10.0.0.1",
                                       minute=START - timedelta(days=days), requests=1,
                                       denied=0, throttled=0, user_agent="x"))  # fmt: skip
    SecurityScanner(config, db, clock=lambda: START).scan()
    with db.read() as session:
        kept = session.scalars(select(AccessPointRow.minute)).all()
    assert [START - m for m in kept] == [timedelta(days=7)]


def test_a_policy_rate_limits_the_attacker_and_cannot_limit_a_distributed_attack(settings, db):
    """The rate-limit action where the user has one (Envoy Gateway): a policy naming source
    security limits the credential stuffer's address; the botnet has no one address, so its
    plan is refused, saying why."""
    with db.write() as session:
        minute = START + timedelta(minutes=1)
        session.add(AccessPointRow(service="web", route="/login", client="203.0.113.7",
                                   minute=minute, requests=40, denied=40, throttled=0,
                                   user_agent="x"))  # fmt: skip
        for n in range(12):
            session.add(AccessPointRow(service="web", route="/login", client=f"198.18.0.{n}",
                                       minute=minute, requests=3, denied=3, throttled=0,
                                       user_agent="x"))  # fmt: skip
    limit = Policy.model_validate(
        {"name": "limit-attackers", "mode": "auto",
         "match": {"source": ["security"],
                   "alertname": ["SecurityCredentialStuffing", "SecurityDistributedAuthAttack"]},
         "action": {"type": "limit_client", "namespace": "shop", "policy": "web-limits"}}
    )  # fmt: skip
    with FakeKube() as cluster:
        cluster.add_backendtrafficpolicy("shop", "web-limits", "web")
        config = load_settings(
            database={"url": settings.database.url, "migrate_on_start": False},
            security={"enabled": True, "window_minutes": 10},
            automation={"kubernetes": {"host": cluster.url}},
        )
        found = SecurityScanner(config, db, clock=lambda: START + timedelta(minutes=3)).scan()
        assert sorted(f.kind for f in found) == ["auth_attack", "credential_stuffing"]
        PolicyRunner(config, db, policies=[limit]).cycle()
        rules = cluster.get("backendtrafficpolicies", "shop", "web-limits")["spec"]["rateLimit"]
    assert rules["local"]["rules"] == [
        {"clientSelectors": [{"sourceCIDR": {"type": "Exact", "value": "203.0.113.7/32"}}],
         "limit": {"requests": 10, "unit": "Minute"}},
    ]  # fmt: skip
    with db.read() as session:
        decided = {d.params["client"]: d for d in session.scalars(select(DecisionRow))}
    assert decided["203.0.113.7"].status == "succeeded", decided["203.0.113.7"].reason
    assert decided["distributed"].status != "succeeded"
    assert "client: must be an IP address, got 'distributed'" in decided["distributed"].reason


def test_the_baseline_of_served_routes_is_read_once_an_hour(settings, db, monkeypatch):
    """A week of per-minute records is read for the baseline once an hour, not every scan."""
    from controlplane.detection import security

    reads: list[datetime] = []
    real = security._baseline
    monkeypatch.setattr(
        security, "_baseline", lambda session, before, since: reads.append(before) or real(
            session, before, since)
    )  # fmt: skip
    config = load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        security={"enabled": True},
    )
    now = [START]
    scanner = SecurityScanner(config, db, clock=lambda: now[0])
    for minutes in (0, 1, 59, 60, 61):
        now[0] = START + timedelta(minutes=minutes)
        scanner.scan()
    window = timedelta(minutes=config.security.window_minutes)
    assert reads == [START - window, START + timedelta(minutes=60) - window]
