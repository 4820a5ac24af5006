"""Store outages: while the store cannot be written the webhook answers 503 with Retry-After
(Alertmanager retries), nothing is stored, and the re-delivery after recovery lands once."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from controlplane.api import create_app
from controlplane.config import Settings
from controlplane.storage import Database
from controlplane.testing.servers import free_port
from tests.factories import WEBHOOK_URL as URL
from tests.factories import alertmanager_fixture, bearer, counts

pytestmark = pytest.mark.integration


def broken_url(settings: Settings) -> str:
    """The same store made unwritable: SQLite opened read-only, PostgreSQL on a closed port."""
    url = settings.database.url
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        return f"sqlite:///file:{path}?mode=ro&uri=true"
    return url.replace("127.0.0.1:5432", f"127.0.0.1:{free_port()}")


def test_store_down_answers_503_and_recovery_loses_nothing(settings, db, tokens):
    payload = alertmanager_fixture("sample")
    down = settings.model_copy(
        update={"database": settings.database.model_copy(update={"url": broken_url(settings)})}
    )
    broken_db = Database(down.database.url)
    before = counts(db)
    with TestClient(create_app(down, broken_db)) as outage:
        response = outage.post(URL, json=payload, headers=bearer(tokens["settings-webhook"]))
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) >= 1
        assert "store unavailable" in response.json()["detail"]
        ready = outage.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert outage.get("/healthz").status_code == 200
        metrics = outage.get("/metrics").text
        assert 'reason="store_unavailable"' in metrics
    broken_db.dispose()
    assert counts(db) == before

    with TestClient(create_app(settings, db)) as recovered:
        retry = recovered.post(URL, json=payload, headers=bearer(tokens["settings-webhook"]))
        assert retry.status_code == 200
        assert len(retry.json()["opened"]) == 1
        again = recovered.post(URL, json=payload, headers=bearer(tokens["settings-webhook"]))
        assert again.json()["duplicate"] is True
    after = counts(db)
    assert after["incident"] == before["incident"] + 1
    assert after["timeline_entry"] == before["timeline_entry"] + 1
