"""Incidents API: filters, pagination, detail, acknowledge/resolve with actors, roles."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from controlplane.storage.models import AuditEventRow
from tests.factories import WEBHOOK_URL as URL
from tests.factories import alert, bearer, notification

pytestmark = pytest.mark.integration


@pytest.fixture
def three_incidents(client, tokens):
    hdr = bearer(tokens["webhook"])
    ids = []
    for n, (service, severity) in enumerate(
        [("api", "critical"), ("db", "warning"), ("api", "info")]
    ):
        response = client.post(
            URL,
            json=notification([alert(f"f{n}", service=service, severity=severity)], f"g{n}"),
            headers=hdr,
        )
        ids.append(response.json()["opened"][0])
    return ids


def test_list_filters_and_paginates(client, tokens, three_incidents):
    viewer = bearer(tokens["viewer"])
    page = client.get("/api/v1/incidents?limit=2", headers=viewer).json()
    assert page["count"] == 3
    assert len(page["data"]) == 2
    assert [i["incident_id"] for i in page["data"]] == sorted(three_incidents, reverse=True)[:2]
    rest = client.get("/api/v1/incidents?limit=2&offset=2", headers=viewer).json()
    assert [i["incident_id"] for i in rest["data"]] == [min(three_incidents)]
    api = client.get("/api/v1/incidents?service=api", headers=viewer).json()
    assert api["count"] == 2
    severe = client.get(
        "/api/v1/incidents?severity=critical&severity=warning", headers=viewer
    ).json()
    assert {i["severity"] for i in severe["data"]} == {"critical", "warning"}
    future = client.get("/api/v1/incidents?since=2999-01-01T00:00:00Z", headers=viewer).json()
    assert future["count"] == 0
    past = client.get("/api/v1/incidents?until=2999-01-01T00:00:00Z", headers=viewer).json()
    assert past["count"] == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status.0"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("since=yesterday", "since"),
        ("since=2026-01-01T00:00:00", "since"),
        ("offset=-1", "offset"),
    ],
)
def test_bad_filters_name_the_parameter(client, tokens, query, field):
    response = client.get(f"/api/v1/incidents?{query}", headers=bearer(tokens["viewer"]))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


def test_acknowledge_and_resolve_record_the_actor(client, db, tokens, three_incidents):
    incident_id = three_incidents[0]
    operator = bearer(tokens["operator"])
    acked = client.post(
        f"/api/v1/incidents/{incident_id}/ack", json={"comment": "on it"}, headers=operator
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "acknowledged"
    assert acked.json()["acknowledged_by"] == "test-operator"
    again = client.post(f"/api/v1/incidents/{incident_id}/ack", headers=operator)
    assert again.status_code == 200
    resolved = client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=operator)
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_by"] == "test-operator"
    conflict = client.post(f"/api/v1/incidents/{incident_id}/ack", headers=operator)
    assert conflict.status_code == 409
    detail = client.get(f"/api/v1/incidents/{incident_id}", headers=operator).json()
    assert [(t["kind"], t["actor"]) for t in detail["timeline"]] == [
        ("opened", "alertmanager"),
        ("acknowledged", "test-operator"),
        ("resolved", "test-operator"),
    ]
    assert detail["timeline"][1]["message"] == "Acknowledged by test-operator: on it"
    with db.read() as session:
        actions = session.execute(
            select(AuditEventRow.action, AuditEventRow.actor)
            .where(
                AuditEventRow.target_type == "incident", AuditEventRow.target_id == str(incident_id)
            )
            .order_by(AuditEventRow.audit_event_id)
        ).all()
    assert [tuple(a) for a in actions] == [
        ("incident.opened", "alertmanager"),
        ("incident.acknowledged", "test-operator"),
        ("incident.resolved", "test-operator"),
    ]


def test_roles(client, tokens, three_incidents):
    incident_id = three_incidents[0]
    assert client.get("/api/v1/incidents").status_code == 401
    assert client.get("/api/v1/incidents", headers=bearer("aiops_unknown")).status_code == 401
    viewer = client.post(f"/api/v1/incidents/{incident_id}/ack", headers=bearer(tokens["viewer"]))
    assert viewer.status_code == 403
    assert "viewer" in viewer.json()["detail"]
    assert (
        client.post(
            f"/api/v1/incidents/{incident_id}/ack", headers=bearer(tokens["admin"])
        ).status_code
        == 200
    )


def test_unknown_incident_is_404(client, tokens):
    response = client.get("/api/v1/incidents/999999", headers=bearer(tokens["viewer"]))
    assert response.status_code == 404
    assert "999999" in response.json()["detail"]
    ack = client.post("/api/v1/incidents/999999/ack", headers=bearer(tokens["operator"]))
    assert ack.status_code == 404


def test_transition_body_is_validated(client, tokens, three_incidents):
    response = client.post(
        f"/api/v1/incidents/{three_incidents[0]}/ack",
        json={"comment": "x", "extra": 1},
        headers=bearer(tokens["operator"]),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "extra"


def test_tokens_admin_api(client, tokens):
    admin = bearer(tokens["admin"])
    created = client.post(
        "/api/v1/tokens", json={"name": "oncall-bot", "role": "operator"}, headers=admin
    )
    assert created.status_code == 201
    secret = created.json()["token"]
    assert client.get("/api/v1/whoami", headers=bearer(secret)).json() == {
        "name": "oncall-bot",
        "role": "operator",
    }
    assert (
        client.post(
            "/api/v1/tokens", json={"name": "oncall-bot", "role": "viewer"}, headers=admin
        ).status_code
        == 409
    )
    bad = client.post("/api/v1/tokens", json={"name": "no spaces", "role": "viewer"}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "name"
    assert client.get("/api/v1/tokens", headers=bearer(tokens["operator"])).status_code == 403
    assert client.delete("/api/v1/tokens/oncall-bot", headers=admin).status_code == 200
    assert client.get("/api/v1/whoami", headers=bearer(secret)).status_code == 401


def test_health_ready_metrics_and_openapi(client, tokens, three_incidents):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json() == {"status": "ready", "store": "ok"}
    client.post(
        URL, content=b"{", headers={**bearer(tokens["webhook"]), "Content-Type": "application/json"}
    )
    text = client.get("/metrics").text
    assert 'aiops_incidents{status="open"} 3.0' in text
    assert (
        'aiops_notifications_received_total{outcome="accepted",source="alertmanager"} 3.0' in text
    )
    assert (
        'aiops_notifications_rejected_total{reason="invalid_json",source="alertmanager"} 1.0'
        in text
    )
    assert "aiops_http_request_duration_seconds_bucket" in text
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/webhooks/alertmanager",
        "/api/v1/incidents",
        "/api/v1/incidents/{incident_id}/ack",
    } <= set(paths)


def test_every_json_answer_has_a_schema_and_its_errors_the_envelope(client):
    """No route answers an untyped dict; the error answers it declares are the envelope."""
    document = client.get("/openapi.json").json()
    untyped, errors = [], []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for code, answer in operation["responses"].items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                if code.startswith("2") and schema == {}:
                    untyped.append(f"{method.upper()} {path}")
                envelope = {"$ref": "#/components/schemas/ErrorBody"}
                if code in ("401", "403", "404", "409") and schema not in (None, envelope):
                    errors.append(f"{method.upper()} {path} {code}")
    assert untyped == []
    assert errors == []
    overview = document["paths"]["/api/v1/overview"]["get"]["responses"]["200"]
    assert overview["content"]["application/json"]["schema"]["$ref"].endswith("OverviewPublic")


def test_api_docs_work_offline(client):
    """/docs loads Swagger UI from the API itself (a package ships its assets), never from a
    CDN: on a machine without internet the page would be blank."""
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources, page.text[:500]
    for source in sources:
        assert source.startswith("/"), f"/docs loads {source} from outside the API"
        assert client.get(source).status_code == 200, source
    assert "/openapi.json" in page.text
    assert client.get("/redoc").status_code == 404  # ReDoc would come from a CDN


def test_urgent_order_and_a_service_filter_that_matches_partially(client, tokens, three_incidents):
    viewer = bearer(tokens["viewer"])
    critical, warning, info = three_incidents
    urgent = client.get("/api/v1/incidents", params={"order": "urgent"}, headers=viewer).json()
    assert [i["incident_id"] for i in urgent["data"]] == [critical, warning, info]
    partial = client.get("/api/v1/incidents", params={"service": "AP"}, headers=viewer).json()
    assert sorted(i["incident_id"] for i in partial["data"]) == [critical, info]
    literal = client.get("/api/v1/incidents", params={"service": "a%"}, headers=viewer).json()
    assert literal["count"] == 0  # LIKE's wildcards are taken as text
    refused = client.get("/api/v1/incidents", params={"order": "loudest"}, headers=viewer)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "order"


def test_incidents_link_out_to_their_graph_in_prometheus_and_grafana(settings, db, tokens):
    from urllib.parse import parse_qs, unquote, urlparse

    from fastapi.testclient import TestClient

    from controlplane.api.app import create_app
    from controlplane.config import load_settings

    linked = load_settings(
        database={"url": settings.database.url, "migrate_on_start": False},
        prometheus={"url": "http://127.0.0.1:9090"},
        links={"grafana_url": "http://grafana.example:3000", "grafana_datasource": "prom-uid"},
    )
    fired = alert("gx", service="api", severity="critical")
    expr = 'histogram_quantile(0.99, rate(http_seconds_bucket{service="api"}[5m])) > 2'
    fired["generatorURL"] = f"http://prometheus:9090/graph?g0.expr={expr}&g0.tab=1"
    with TestClient(create_app(linked, db)) as client:
        opened = client.post(
            URL, json=notification([fired], "g-links"), headers=bearer(tokens["webhook"])
        ).json()["opened"][0]
        detail = client.get(f"/api/v1/incidents/{opened}", headers=bearer(tokens["viewer"]))
    links = detail.json()["links"]
    assert links["console"] == f"http://127.0.0.1:8501/incidents?incident={opened}"
    graph = urlparse(links["prometheus"])
    assert graph.netloc == "127.0.0.1:9090"
    assert parse_qs(graph.query)["g0.expr"] == [expr]  # the rule's own expression
    assert graph.path == "/graph"
    explore = unquote(links["grafana"])
    assert explore.startswith("http://grafana.example:3000/explore?schemaVersion=1")
    assert '"uid":"prom-uid"' in explore
    assert 'rate(http_seconds_bucket{service=\\"api\\"}[5m])' in explore
