"""Shared fixtures: a migrated store on SQLite and on PostgreSQL, tokens, the API.

Every test that takes `db` runs twice, on SQLite (a fresh file per test) and on PostgreSQL
(the server on 127.0.0.1:5432; one schema per test session, tables truncated between tests).
Where PostgreSQL cannot be reached the PostgreSQL cases skip with the reason, unless
AIOPS_TEST_REQUIRE_POSTGRES=1 (set by .ci/run), which turns that skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from controlplane import auth
from controlplane.api import create_app
from controlplane.config import Settings, load_settings
from controlplane.domain.models import Role
from controlplane.storage import Database, upgrade
from controlplane.storage.models import Base
from tests.factories import WEBHOOK_TOKEN

POSTGRES_URL = os.environ.get(
    "AIOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("AIOPS_TEST_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres_schema_url() -> Iterator[str]:
    """A fresh, migrated schema in the test database, dropped at the end of the session."""
    schema = f"aiops_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        reason = f"PostgreSQL at {POSTGRES_URL} unreachable: {str(exc).splitlines()[0]}"
        if REQUIRE_POSTGRES:
            pytest.fail(reason + " (AIOPS_TEST_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    upgrade(url)
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'aiops.db'}"
        upgrade(url)
        yield url
        return
    url = request.getfixturevalue("postgres_schema_url")
    yield url
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(autouse=True)
def _detector_state_per_test(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Each test saves detector state in a folder of its own (the default is a folder in the
    working directory, which tests must neither share nor leave behind)."""
    folder = tmp_path_factory.mktemp("detector-state")
    monkeypatch.setenv("AIOPS_DETECTION__STATE_DIR", str(folder))


@pytest.fixture
def settings(db_url: str) -> Settings:
    return load_settings(
        database={"url": db_url, "migrate_on_start": False},
        auth={"webhook_token": WEBHOOK_TOKEN},
        # A loaded CI machine can take seconds for a commit; the deadline's own tests set
        # theirs (a test that hits the 5 s default by accident fails as a flake, not a bug).
        api={"request_deadline_seconds": 30},
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database.url)
    yield database
    database.dispose()


@pytest.fixture
def tokens(db: Database) -> dict[str, str]:
    """A secret per role, plus 'settings-webhook' for the token configured in settings."""
    secrets = {"settings-webhook": WEBHOOK_TOKEN}
    with db.write() as session:
        for role in Role:
            _, secrets[role.value] = auth.create_token(
                session, f"test-{role.value}", role, actor="fixture"
            )
    return secrets


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db)) as test_client:
        yield test_client
