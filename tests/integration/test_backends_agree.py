"""Hypothesis over the webhook's payload space (labels with any Unicode, lone surrogates and
NUL included, long values, extreme timestamps): SQLite and PostgreSQL give the same class of
answer to every payload, never a 5xx, and a refused payload stores nothing on either."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.api import create_app
from controlplane.config import load_settings
from controlplane.storage import Database, upgrade
from tests.factories import WEBHOOK_TOKEN, WEBHOOK_URL, alert, bearer, counts, notification

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)
TIMES = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:59:59+14:00",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:30:00+01:00",
            "1970-01-01T00:00:00Z",
            "2026-12-01T12:00:00.123456789Z",
        ]
    ),
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
)


@st.composite
def payloads(draw: st.DrawFn) -> dict:
    body = alert(draw(st.text(min_size=1, max_size=20)), service=draw(TEXT))
    body["labels"].update(draw(st.dictionaries(TEXT, TEXT, max_size=4)))
    body["annotations"] = draw(st.dictionaries(TEXT, TEXT, max_size=3))
    body["startsAt"] = draw(TIMES)
    return notification([body], draw(st.text(min_size=1, max_size=40)))


@pytest.fixture
def both(tmp_path: Path, postgres_schema_url: str) -> Iterator[dict[str, tuple]]:
    sqlite_url = f"sqlite:///{tmp_path / 'agree.db'}"
    upgrade(sqlite_url)
    clients = {}
    for name, url in (("sqlite", sqlite_url), ("postgresql", postgres_schema_url)):
        config = load_settings(
            database={"url": url, "migrate_on_start": False}, auth={"webhook_token": WEBHOOK_TOKEN}
        )
        db = Database(url)
        clients[name] = (TestClient(create_app(config, db)).__enter__(), db)
    yield clients
    for client, db in clients.values():
        client.__exit__(None, None, None)
        db.dispose()


def test_both_backends_answer_every_payload_alike(both):
    tally: dict[int, int] = {}

    @given(payload=payloads())
    @settings(
        max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def agree(payload: dict) -> None:
        body = json.dumps(payload)  # lone surrogates travel as \\ud800 escapes
        answers = {}
        for name, (client, db) in both.items():
            before = counts(db)
            answer = client.post(
                WEBHOOK_URL,
                content=body,
                headers={**bearer(WEBHOOK_TOKEN), "content-type": "application/json"},
            )
            assert answer.status_code < 500, (name, answer.text)
            if answer.status_code >= 400:
                assert counts(db) == before, name  # nothing partial
            answers[name] = answer.status_code // 100
        assert answers["sqlite"] == answers["postgresql"], (answers, payload)
        tally[answers["sqlite"]] = tally.get(answers["sqlite"], 0) + 1

    agree()
    print(f"\npayloads by answer class on both backends: {dict(sorted(tally.items()))}")
    assert len(tally) == 2  # the space holds storable and unstorable payloads
