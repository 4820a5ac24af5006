"""Security detection on a labelled scenario generated with the OpenTelemetry SDK and sent
as OTLP to the real API: an hour of 40 ordinary clients (some mistyping a password, one busy
office behind a NAT) with three attackers hidden in it: credential stuffing, a scraper and a
slow brute force. Precision and recall are per client, and printed; they are in-sample: the
thresholds were chosen knowing what this scenario contains (not fitted on it, not held out).
Then: the findings are incidents of source `security`, and a policy without
`match.source: [security]` does not act on them."""

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
from controlplane.policy.schema import Policy
from controlplane.storage.models import IncidentRow
from controlplane.testing.servers import ApiServer
from tests.factories import WEBHOOK_TOKEN

pytestmark = pytest.mark.integration

START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=61)
ATTACKERS = {
    "203.0.113.7": "credential_stuffing",
    "198.51.100.23": "scraper",
    "192.0.2.99": "slow_brute_force",
}
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"


def requests(rng: random.Random) -> list[tuple[int, str, str, str, int]]:
    """(minute, client, path, user agent, status) of the hour."""
    out = []
    ordinary = [f"10.0.0.{n}" for n in range(1, 41)]
    pages = ["/", "/cart", "/checkout", "/search", "/account"]
    for minute in range(60):
        for client in ordinary:
            for _ in range(rng.randint(0, 4)):
                path = rng.choice([*pages, f"/products/{rng.randint(1, 400)}"])
                out.append((minute, client, path, BROWSER, 200))
        for _ in range(15):  # a busy office behind one address: many requests, few pages
            out.append((minute, "10.1.0.1", rng.choice(pages[:4]), BROWSER, 200))
        if 20 <= minute < 25:  # credential stuffing: 40 refused logins a minute
            out += [(minute, "203.0.113.7", "/login", "python-requests/2.32", 401)] * 40
        for _ in range(20):  # a scraper walking the catalogue
            out.append((minute, "198.51.100.23", f"/products/{rng.randint(1, 5000)}",
                        "Mozilla/5.0 (compatible; ShopBot/1.0)", 200))  # fmt: skip
        if 10 <= minute < 55:  # a slow brute force: one refused login a minute
            out.append((minute, "192.0.2.99", "/login", BROWSER, 401))
    for client in ("10.0.0.3", "10.0.0.17"):  # people mistyping their password
        out += [(30, client, "/login", BROWSER, 401)] * 5 + [(31, client, "/login", BROWSER, 200)]
    return out


def send(api_url: str, traffic: list[tuple[int, str, str, str, int]]) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-web"}))
    exporter = OTLPSpanExporter(
        endpoint=f"{api_url}/v1/traces", headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    )
    # A queue for the whole hour: the default (2,048) drops what does not fit.
    batches = BatchSpanProcessor(exporter, max_queue_size=len(traffic), max_export_batch_size=512)
    provider.add_span_processor(batches)
    tracer = provider.get_tracer("scenario")
    for minute, client, path, agent, status in traffic:
        start = int((START + timedelta(minutes=minute, seconds=30)).timestamp() * 1e9)
        span = tracer.start_span(
            f"GET {path}",
            kind=SpanKind.SERVER,
            start_time=start,
            attributes={
                "http.request.method": "GET",
                "url.path": path,
                "http.response.status_code": status,
                "client.address": client,
                "user_agent.original": agent,
            },
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
    flagged = {f.client: f.kind for f in found}
    hits = set(flagged) & set(ATTACKERS)
    precision = len(hits) / len(flagged) if flagged else 0.0
    recall = len(hits) / len(ATTACKERS)
    clients = len({c for _, c, _, _, _ in traffic})
    with capsys.disabled():
        print(
            f"\nsecurity scenario: {len(traffic)} requests from {clients} clients; flagged "
            f"{sorted(flagged)}; precision {precision:.2f}, recall {recall:.2f}"
        )
    assert flagged == ATTACKERS  # each attacker found, as what it is, and nobody else
    with db.read() as session:
        incidents = session.scalars(select(IncidentRow)).all()
    assert {i.source for i in incidents} == {"security"}
    assert {i.labels["client"] for i in incidents} == set(ATTACKERS)
    assert {i.severity for i in incidents if i.labels["client"] == "203.0.113.7"} == {"critical"}
    assert scanner.scan()  # a second scan finds the same: no new incident
    with db.read() as session:
        assert len(session.scalars(select(IncidentRow)).all()) == 3

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
    from controlplane.storage.models import AccessPointRow

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
