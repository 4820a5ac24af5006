"""Spans from the real OpenTelemetry SDK (OTLP/HTTP protobuf exporter) reach `POST /v1/traces`
on a real uvicorn server and become RED series and a service dependency graph; root-cause
hints then blame the deepest anomalous callee."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from controlplane.api import create_app
from controlplane.detection import rootcause
from controlplane.storage.models import EvidenceRow, IncidentRow, ServiceEdgeRow
from controlplane.testing.servers import ApiServer
from tests.factories import bearer

pytestmark = pytest.mark.integration


def _provider(service: str, url: str, token: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=bearer(token))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def server(settings, db):
    with ApiServer(create_app(settings, db)) as running:
        yield running


def test_sdk_spans_become_red_series_and_a_dependency_graph(server, tokens):
    frontend = _provider("frontend", server.url, tokens["webhook"]).get_tracer("test")
    checkout = _provider("checkout", server.url, tokens["webhook"]).get_tracer("test")
    for i in range(10):
        with (
            frontend.start_as_current_span("GET /cart", kind=SpanKind.SERVER),
            frontend.start_as_current_span("POST checkout", kind=SpanKind.CLIENT) as call,
        ):
            context = trace.set_span_in_context(call)
            with checkout.start_as_current_span(
                "POST /checkout", context=context, kind=SpanKind.SERVER
            ) as handler:
                if i % 5 == 0:
                    handler.set_status(Status(StatusCode.ERROR, "card declined"))

    headers = bearer(tokens["viewer"])
    graph = httpx.get(f"{server.url}/api/v1/traces/graph", headers=headers).json()
    assert graph == [{"caller": "frontend", "callee": "checkout", "calls": 10, "errors": 2}]
    red = httpx.get(
        f"{server.url}/api/v1/traces/red",
        params={"service": "checkout", "metric": "error_ratio"},
        headers=headers,
    ).json()
    ratios = [p["value"] for p in red if p["value"] is not None]
    assert ratios
    assert 0 < max(ratios) <= 1  # 2 of the 10 checkout spans failed
    total_errors = httpx.get(
        f"{server.url}/api/v1/traces/red",
        params={"service": "frontend", "metric": "rate"},
        headers=headers,
    ).json()
    assert sum(p["value"] for p in total_errors) * 60 == pytest.approx(20)  # 2 spans x 10
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "aiops_spans_received_total 30.0" in metrics


def test_otlp_json_gzip_and_refusals(client, tokens):
    now = int(datetime.now(UTC).timestamp() * 1e9)
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "GET /items",
                                "startTimeUnixNano": str(now - 150_000_000),
                                "endTimeUnixNano": str(now),
                                "status": {"code": 2},
                            }
                        ]
                    }
                ],
            }
        ]
    }
    headers = {
        **bearer(tokens["webhook"]),
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    ok = client.post(
        "/v1/traces", content=gzip.compress(json.dumps(body).encode()), headers=headers
    )
    assert ok.status_code == 200, ok.text
    p95 = client.get(
        "/api/v1/traces/red",
        params={"service": "cart", "metric": "p95"},
        headers=bearer(tokens["viewer"]),
    ).json()
    assert 100 <= p95[0]["value"] <= 200  # 150 ms falls in the 100-200 ms bucket

    plain = {**headers, "Content-Encoding": "identity"}
    bad = client.post("/v1/traces", content=b'{"resourceSpans": 5}', headers=plain)
    assert bad.status_code == 400
    assert "OTLP" in bad.json()["detail"]
    bad_id = json.dumps(body).replace("eee19b7ec3c1b174", "not-hex")
    assert client.post("/v1/traces", content=bad_id, headers=plain).status_code == 400
    assert client.post("/v1/traces", content=b"x", headers=headers).status_code == 400  # gzip
    assert client.post("/v1/traces", content=b"{}").status_code == 401
    viewer = {**plain, **bearer(tokens["viewer"])}
    assert client.post("/v1/traces", content=b"{}", headers=viewer).status_code == 403


def test_root_cause_blames_the_deepest_anomalous_callee(db):
    """frontend shows errors first (it sees the timeouts), but it calls checkout, which calls
    payments; all three are anomalous, so payments, the deepest, ranks first. search is
    anomalous at the same time but nothing connects it to frontend: it is not a hint."""
    t0 = datetime.now(UTC).replace(microsecond=0)
    with db.write() as session:
        for caller, callee in (("frontend", "checkout"), ("checkout", "payments")):
            session.add(ServiceEdgeRow(caller=caller, callee=callee, minute=t0, calls=50, errors=9))
        incident = IncidentRow(
            title="AnomalyDetected",
            status="open",
            severity="warning",
            service="frontend",
            source="detector",
            group_key="service=frontend",
            labels={},
            opened_at=t0,
        )
        session.add(incident)
        session.flush()
        for minutes, service in ((0, "frontend"), (2, "checkout"), (3, "payments")):
            session.add(
                EvidenceRow(
                    incident_id=incident.incident_id,
                    signal=f"{service}-errors",
                    service=service,
                    onset_at=t0 + timedelta(minutes=minutes),
                    peak_score=0.8,
                    data={},
                )
            )
        session.add(
            EvidenceRow(
                incident_id=incident.incident_id,
                signal="search-latency",
                service="search",
                onset_at=t0 + timedelta(minutes=1),
                peak_score=0.6,
                data={},
            )
        )
    with db.read() as session:
        hints = rootcause.hints_for(session, session.get(IncidentRow, incident.incident_id))
    assert [h.service for h in hints] == ["payments", "checkout", "frontend"]
    payments = hints[0]
    assert "deepest" in payments.reasons[0]
    assert "checkout (50 calls, 9 errors)" in payments.reasons[1]
    assert hints[2].reasons[0] == "depends on anomalous checkout, payments"
    assert all(h.score == 0.8 for h in hints)


def test_root_cause_ranks_only_what_overlaps_and_connects(db):
    """A known cause: payments' database fails, payments' alert fires, checkout (its caller)
    pages. Unrelated at the same time: search's alert (no call path to checkout); and an
    inventory incident that was over before checkout's began. Only payments and checkout
    are hints, payments first, each with a score and its whole reason."""
    t0 = datetime.now(UTC).replace(microsecond=0)
    with db.write() as session:
        for caller, callee in (("checkout", "payments"), ("checkout", "inventory")):
            session.add(ServiceEdgeRow(caller=caller, callee=callee, minute=t0, calls=40, errors=6))

        def incident(service, severity, opened, resolved=None):
            row = IncidentRow(
                title=f"HighErrorRate on {service}",
                status="resolved" if resolved else "open",
                severity=severity,
                service=service,
                source="alertmanager",
                group_key=f"service={service}",
                labels={},
                opened_at=opened,
                resolved_at=resolved,
            )
            session.add(row)
            session.flush()
            return row

        paging = incident("checkout", "critical", t0)
        incident("payments", "error", t0 - timedelta(minutes=4))
        incident("search", "critical", t0 - timedelta(minutes=6))
        incident("inventory", "warning", t0 - timedelta(minutes=30), t0 - timedelta(minutes=20))
    with db.read() as session:
        hints = rootcause.hints_for(session, session.get(IncidentRow, paging.incident_id))
    assert [h.service for h in hints] == ["payments", "checkout"]
    cause = hints[0]
    assert cause.score == 0.75
    assert cause.reasons == [
        "scored by its alerts' severity (error)",
        "no anomalous dependency of its own: deepest on the call path",
        "explains anomalies of its callers checkout (40 calls, 6 errors)",
        "earliest onset",
    ]
    assert hints[1].reasons[-1] == "onset 4 min after the first"
