"""Engine, sessions and migrations for SQLite (embedded default) and PostgreSQL.

`Database.write()` and `Database.read()` are the only ways into a transaction. Both turn a
store that cannot be reached or written into `StoreUnavailableError`, which the API answers
with 503 so that Alertmanager retries instead of losing the notification.

SQLite runs in WAL mode with `synchronous=FULL` (a 2xx means the notification reached the
disk) and write transactions start with `BEGIN IMMEDIATE` behind an in-process lock: SQLite
has one writer, and queueing in Python beats its sleeping busy handler on tail latency.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from controlplane.domain.errors import StoreUnavailableError

_MIGRATIONS = Path(__file__).with_name("migrations")
#: Every wait on PostgreSQL is bounded: connecting (5 s), a peer that stops answering without
#: closing the connection (TCP keepalives after 5 s idle, 2 probes 2 s apart; unacknowledged
#: writes give up after 5 s), a lock (5 s), a statement (30 s), a transaction left idle (60 s).
POSTGRES_BOUNDS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "tcp_user_timeout": 5000,
    "options": "-c statement_timeout=30000 -c lock_timeout=5000 "
    "-c idle_in_transaction_session_timeout=60000",
}


def _bounded(url: str) -> dict[str, object]:
    """The connection's bounds; the URL's own `options` (a search_path, say) come first and
    the URL may set any bound itself (a later `-c` wins)."""
    given = make_url(url).query.get("options", "")
    own = given if isinstance(given, str) else " ".join(given)
    bounds = {k: v for k, v in POSTGRES_BOUNDS.items() if k not in make_url(url).query}
    bounds["options"] = f"{POSTGRES_BOUNDS['options']} {own}".strip()
    return bounds


_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)
MIGRATION_LOCK = 0x41494F5000  # "AIOP" + 0: one migration at a time on PostgreSQL


class Database:
    """One engine and its session factory; share a single instance per process."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self.engine = _create_engine(url, pool_size=pool_size, echo=echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock: threading.Lock | nullcontext[None] = (
            threading.Lock() if self.is_sqlite else nullcontext()
        )

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A read-write transaction, committed on normal exit and rolled back on error."""
        with self._write_lock, self._translated(), self._sessions() as session:
            if self.is_sqlite:
                session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            yield session
            session.commit()  # an exception skips this; closing the session rolls back

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (rolled back at exit)."""
        with self._translated(), self._sessions() as session:
            yield session  # closing the session rolls the read transaction back

    def ping(self) -> None:
        """Raise StoreUnavailableError unless the store is migrated and accepts writes.

        A write transaction is opened (and rolled back): a read-only SQLite file or a
        PostgreSQL standby answers reads but cannot take a single notification.
        """
        with self.write() as session:
            if self.is_sqlite:  # a no-op write, rolled back: fails on a read-only file
                session.execute(text("UPDATE alembic_version SET version_num = version_num"))
            elif session.scalar(text("SHOW transaction_read_only")) == "on":
                raise StoreUnavailableError("store unavailable: the database is read-only")
            session.execute(text("SELECT 1 FROM alembic_version"))
            session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(f"store unavailable: {_reason(exc)}") from exc


def masked(url: str) -> str:
    """The database URL with its password hidden (`***`): what logs and messages may show."""
    return make_url(url).render_as_string(hide_password=True)


def _reason(exc: Exception) -> str:
    """The driver's first line (e.g. 'connection refused'), without SQLAlchemy's boilerplate."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _create_engine(url: str, *, pool_size: int, echo: bool) -> Engine:
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_timeout=5,
            echo=echo,
            connect_args=_bounded(url),
        )
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 10})
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the Alembic migrations up to `revision` (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    engine = _create_engine(url, pool_size=1, echo=False)
    try:
        with engine.begin() as connection:
            if make_url(url).get_backend_name() != "sqlite":
                # Pods starting together migrate one after the other (the others find it done).
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except _UNAVAILABLE as exc:
        raise StoreUnavailableError(f"cannot migrate {make_url(url)!r}: {_reason(exc)}") from exc
    finally:
        engine.dispose()


def upsert(session: Session, table: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """Insert `rows` into `table`, replacing the other columns of rows whose `keys` exist: one
    statement per 2,000 rows (not a read and a write per row, as `Session.merge` does)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    for start in range(0, len(rows), 2000):
        statement = insert(table).values(rows[start : start + 2000])
        replaced = {c: statement.excluded[c] for c in rows[0] if c not in keys}
        session.execute(statement.on_conflict_do_update(index_elements=keys, set_=replaced))
