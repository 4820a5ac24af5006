"""The store on SQLite and PostgreSQL: migrations match the models, the audit log refuses
changes, SQLite runs in WAL mode, timestamps come back timezone-aware."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from controlplane import storage
from controlplane.storage import audit, upgrade
from controlplane.storage.models import AuditEventRow, Base

pytestmark = pytest.mark.integration
MIGRATIONS = Path(storage.__file__).parent / "migrations"


def test_migrations_match_the_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(db_url):
    upgrade(db_url)
    upgrade(db_url)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        assert current == ScriptDirectory(str(MIGRATIONS)).get_current_head()
    finally:
        engine.dispose()


def test_audit_log_is_append_only(db):
    with db.write() as session:
        audit.record(
            session,
            actor="alice",
            action="test.done",
            target_type="thing",
            target_id=1,
            details={"k": "v"},
        )
    for statement in ("UPDATE audit_event SET actor = 'mallory'", "DELETE FROM audit_event"):
        with pytest.raises(DBAPIError, match="append-only"), db.write() as session:
            session.execute(text(statement))
    with db.read() as session:
        row = session.query(AuditEventRow).one()
    assert (row.actor, row.details) == ("alice", {"k": "v"})
    assert row.at.tzinfo is not None


def test_sqlite_uses_wal_and_full_sync(db):
    if not db.is_sqlite:
        pytest.skip("SQLite only")
    with db.read() as session:
        assert session.scalar(text("PRAGMA journal_mode")) == "wal"
        assert session.scalar(text("PRAGMA synchronous")) == 2  # FULL
        assert session.scalar(text("PRAGMA foreign_keys")) == 1
