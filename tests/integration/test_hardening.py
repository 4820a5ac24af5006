"""Input no store can keep is refused at the edge, the same way on SQLite and PostgreSQL,
with the error envelope naming the field: never a 503 a sender retries forever, never a
plain-text 500, never the store's message echoed. A poison delivery in a group commit fails
only itself."""

from __future__ import annotations

import gzip
import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy.exc import DataError, StatementError

from controlplane.api import create_app
from controlplane.domain.alertmanager import Notification
from controlplane.domain.models import Principal, Role
from controlplane.incidents.intake import Delivery
from controlplane.incidents.writer import IntakeWriter, _refused
from controlplane.policy import state
from controlplane.testing.servers import ApiServer
from tests.factories import WEBHOOK_URL as URL
from tests.factories import alert, bearer, counts, notification

pytestmark = pytest.mark.integration
BIG = 2**63  # one above the largest signed 64-bit integer


def poisoned(where: str, value: Any) -> dict[str, Any]:
    """A valid notification with one value replaced."""
    body = notification([alert("p1", service="checkout")], "poison")
    target = body["alerts"][0]
    if where == "label":
        target["labels"]["team"] = value
    elif where == "label_name":
        target["labels"][value] = "x"
    elif where == "annotation":
        target["annotations"]["summary"] = value
    elif where == "alertname":
        target["labels"]["alertname"] = value
    elif where == "service":
        target["labels"]["service"] = value
    else:
        target[where] = value
    return body


POISON = [  # (what, where, value, the field the answer names)
    ("a start that overflows UTC", "startsAt", "9999-12-31T23:59:59-01:00", "alerts.0.startsAt"),
    ("an end that overflows UTC", "endsAt", "9999-12-31T23:30:00-05:00", "alerts.0.endsAt"),
    ("NUL in a label", "label", "a\u0000b", "alerts.0.labels.team"),
    ("NUL in a label name", "label_name", "te\u0000am", "alerts.0.labels"),
    ("NUL in an annotation", "annotation", "x\u0000", "alerts.0.annotations.summary"),
    ("a lone surrogate", "label", "\ud800", "alerts.0.labels.team"),
    ("an alertname of 256 characters", "alertname", "A" * 256, "alerts.0.labels"),
    ("a service of 300 characters", "service", "s" * 300, "alerts.0.labels"),
]


@pytest.mark.parametrize(("what", "where", "value", "field"), POISON, ids=[p[0] for p in POISON])
def test_unstorable_input_is_refused_naming_the_field(
    client, db, tokens, what, where, value, field
):
    before = counts(db)
    body = json.dumps(poisoned(where, value)).encode("utf-8", "surrogatepass")
    response = client.post(
        URL, content=body, headers={**bearer(tokens["webhook"]), "content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["errors"][0]["field"].startswith(field), answer
    assert "Retry-After" not in response.headers
    assert counts(db) == before  # nothing partial stored


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(client, db, tokens, constant):
    body = json.dumps(notification([alert("n1", service="checkout")], "nan"))
    body = body.replace('"truncatedAlerts": 0', f'"truncatedAlerts": {constant}')
    response = client.post(
        URL, content=body, headers={**bearer(tokens["webhook"]), "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == f"body: not valid JSON: {constant} is not a JSON value"


def test_json_nested_too_deeply_is_a_400_everywhere(client, tokens):
    deep = "[" * 5000 + "]" * 5000
    routes = ((URL, "webhook"), ("/v1/traces", "webhook"), ("/api/v1/incidents/1/ack", "operator"))
    for path, token in routes:
        response = client.post(
            path,
            content=deep,
            headers={**bearer(tokens[token]), "content-type": "application/json"},
        )
        assert response.status_code == 400, (path, response.text)
        assert response.json()["detail"] in (
            "body: JSON nested too deeply",  # the webhook's own parser
            "body: nested too deeply to be an OTLP trace export",
            "There was an error parsing the body",  # FastAPI's, for every other route
        )


def test_nan_in_a_json_body_is_not_echoed_into_an_invalid_answer(client, tokens):
    response = client.post(
        "/api/v1/incidents/1/ack",
        content='{"comment": NaN}',
        headers={**bearer(tokens["operator"]), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["value"] == "nan"


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/incidents/{BIG}",
        f"/api/v1/decisions/{BIG}",
        f"/api/v1/reports/{BIG}",
        f"/api/v1/incidents?offset={BIG}",
        f"/api/v1/decisions?incident_id={BIG}",
        f"/api/v1/audit?offset={BIG}",
        "/api/v1/incidents?since=9999-12-31T23:59:59-01:00",
        "/api/v1/audit?until=0001-01-01T00:00:00%2B01:00",
    ],
)
def test_out_of_range_ids_and_times_are_a_422(client, tokens, path):
    response = client.get(path, headers=bearer(tokens["viewer"]))
    assert response.status_code == 422, response.text
    assert response.json()["errors"]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/incidents?q=a%00b", "/api/v1/incidents?service=%00", "/api/v1/audit?actor=x%00"],
)
def test_nul_in_a_filter_is_a_400(client, tokens, path):
    response = client.get(path, headers=bearer(tokens["viewer"]))
    assert response.status_code == 400
    assert response.json()["detail"] == "URL: must not contain the NUL character (%00)"


def test_nul_in_a_comment_is_a_422(client, tokens):
    client.post(
        URL,
        json=notification([alert("c1", service="checkout")], "c"),
        headers=bearer(tokens["webhook"]),
    ).raise_for_status()
    (incident,) = client.get("/api/v1/incidents", headers=bearer(tokens["viewer"])).json()["data"]
    response = client.post(
        f"/api/v1/incidents/{incident['incident_id']}/ack",
        json={"comment": "looking\u0000"},
        headers=bearer(tokens["operator"]),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "comment"


def test_a_poison_delivery_fails_alone_in_its_batch(db, settings):
    """The group commit applies a batch in one transaction; one delivery that fails (here a
    payload only a bug could produce: not JSON-serialisable) must not fail the twelve others
    batched with it, which are stored."""
    writer = IntakeWriter(db, group_by="service")
    good = [
        _delivery(notification([alert(f"g{n}", service="checkout")], f"good-{n}"))
        for n in range(12)
    ]
    bad = _delivery(notification([alert("bad", service="checkout")], "bad"))
    bad = Delivery(bad.notification, {"unstorable": _Unserialisable()}, bad.digest)
    batch = [(d, Future()) for d in [*good[:6], bad, *good[6:]]]
    writer._apply(batch)  # what the writer thread does with 13 deliveries waiting at once
    outcomes = [_outcome(future) for _, future in batch]
    assert outcomes[6] in ("UnstorableError", "StoreUnavailableError")  # refused, or retried
    assert outcomes[:6] + outcomes[7:] == ["stored"] * 12
    assert counts(db)["notification"] == 12


def test_only_data_the_store_refuses_is_answered_as_permanent():
    """422 (never retried) for what the store or its driver refused about the data; 503
    (retried) for anything else, which may be a fault of ours that a fix heals."""
    assert _refused(DataError("INSERT ...", {}, Exception("value too long")))
    assert _refused(StatementError("bind", "INSERT ...", {}, TypeError("not serialisable")))
    assert _refused(OverflowError("date value out of range"))
    assert not _refused(TypeError("a bug of ours"))
    assert not _refused(KeyError("alertname"))


class _Unserialisable:
    """Refused by every store's JSON column (not by the webhook's validation)."""


def _delivery(body: dict[str, Any]) -> Delivery:
    raw = json.dumps(body).encode()
    return Delivery.of(raw, body, Notification.model_validate(body))


def _outcome(future) -> str:
    try:
        future.result(timeout=30)
    except Exception as exc:
        return type(exc).__name__
    return "stored"


def otlp(client, tokens, body: bytes, **headers: str):
    return client.post(
        "/v1/traces",
        content=body,
        headers={
            **bearer(tokens["webhook"]),
            "content-type": "application/x-protobuf",
            **headers,
        },
    )


def export(service: str, span: str = "GET /") -> bytes:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    attribute = resource.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", service
    one = resource.scope_spans.add().spans.add()
    one.name, one.trace_id, one.span_id = span, b"\x01" * 16, b"\x02" * 8
    one.start_time_unix_nano, one.end_time_unix_nano = (
        1_764_590_400_000_000_000,
        1_764_590_400_100_000_000,
    )
    return request.SerializeToString()


def test_otlp_garbage_and_unstorable_names_are_a_400(client, tokens):
    assert otlp(client, tokens, b"\xff\xff\xff garbage").status_code == 400
    for body, field in [
        (export("s" * 256), "resourceSpans.0.resource.service.name"),
        (export("checkout\x00"), "resourceSpans.0.resource.service.name"),
        (export("checkout", "x" * 300), "resourceSpans.0.span.name"),
    ]:
        response = otlp(client, tokens, body)
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith(field), response.json()


def test_otlp_reads_every_member_of_a_gzip_body(client, tokens):
    body = gzip.compress(export("checkout")[:10]) + gzip.compress(export("checkout")[10:])
    response = otlp(client, tokens, body, **{"content-encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert client.get("/metrics").text.count("aiops_spans_received_total 1.0") == 1
    cut = gzip.compress(export("checkout"))[:-6]
    assert otlp(client, tokens, cut, **{"content-encoding": "gzip"}).status_code == 400


def test_an_unexpected_error_is_the_envelope_and_the_log_not_the_traceback(client, tokens):
    def boom(*_: object) -> None:
        raise RuntimeError("secret internals: SELECT * FROM api_token")

    client.app.state.intake_writer.submit = boom
    outside = TestClient(client.app, raise_server_exceptions=False)  # as a sender sees it
    response = outside.post(
        URL,
        json=notification([alert("e1", service="checkout")], "e"),
        headers=bearer(tokens["webhook"]),
    )
    assert response.status_code == 500
    assert response.json() == {
        "detail": "internal error: the control plane's log has the details",
        "errors": [],
    }


def test_the_kill_switch_is_safe_under_concurrency(settings, db, tokens):
    """Its first use on a fresh store, by many admins at once, and then a mixed storm: every
    call answered 200, and the state that stays is the last one audited."""
    admin = bearer(tokens["admin"])
    with ApiServer(create_app(settings, db)) as server:

        def switch(n: int, verb: str = "pause") -> int:
            return httpx.post(
                f"{server.url}/api/v1/automation/{verb}",
                json={"reason": f"call {n}"},
                headers=admin,
                timeout=30,
            ).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(switch, range(8))) == [200] * 8
            verbs = ["pause", "resume"] * 10
            assert list(pool.map(switch, range(20), verbs)) == [200] * 20
        state = httpx.get(f"{server.url}/api/v1/automation", headers=admin).json()
        events = httpx.get(
            f"{server.url}/api/v1/audit",
            params={"action": "automation.", "limit": 1},
            headers=admin,
        ).json()["data"]
    assert events[0]["action"] == ("automation.paused" if state["paused"] else "automation.resumed")
    assert events[0]["details"]["reason"] == state["reason"]


def test_the_first_use_of_the_kill_switch_races_safely_in_the_store(db):
    """Eight transactions create the switch's row at the same instant (a barrier)."""
    barrier = threading.Barrier(8)

    def pause(n: int) -> bool:
        with db.write() as session:
            if not db.is_sqlite:  # SQLite writes one at a time: nothing to race
                barrier.wait(timeout=10)
            state.set_paused(session, True, Principal(f"admin-{n}", Role.ADMIN), f"call {n}")
        return True

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(pause, range(8)))
    with db.read() as session:
        assert state.is_paused(session)


def test_the_audit_action_filter_is_a_prefix_not_a_pattern(client, tokens):
    client.post(
        URL,
        json=notification([alert("a1", service="checkout")], "a"),
        headers=bearer(tokens["webhook"]),
    ).raise_for_status()
    viewer = bearer(tokens["viewer"])
    assert client.get("/api/v1/audit", params={"action": "incident."}, headers=viewer).json()[
        "count"
    ]
    for pattern in ("%", "_ncident.", "incident%"):
        answer = client.get("/api/v1/audit", params={"action": pattern}, headers=viewer)
        assert answer.json()["count"] == 0, pattern


def test_a_wrong_method_says_which_are_allowed(client, tokens):
    answer = client.delete(URL, headers=bearer(tokens["webhook"]))
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.json()["detail"] == "Method Not Allowed"


def test_a_flood_of_readiness_probes_costs_one_store_probe_a_second(client, db, monkeypatch):
    probes = []
    real = db.ping
    monkeypatch.setattr(db, "ping", lambda: probes.append(1) or real())
    monkeypatch.setattr(client.app.state.readiness, "ttl", 3600.0)  # no clock in the test
    for _ in range(50):
        assert client.get("/readyz").status_code == 200
    assert len(probes) == 1  # the write-lock probe ran once; 49 answers came from it
