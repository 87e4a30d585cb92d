"""Engines and sessions. SQLite runs in WAL mode with foreign keys on and a busy
timeout, so several reviewer sessions and worker processes can share one file."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from curation.config import database_url

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str) -> str:
    """postgresql:// and postgres:// mean psycopg 3 here."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API hook
    # Let SQLAlchemy, not pysqlite, manage transactions, so BEGIN IMMEDIATE works.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # 64 MB of page cache (default 2 MB) per connection, taken only as pages are read:
    # bulk writes of cache rows with random keys otherwise spill pages to the WAL
    # mid-transaction and write them again.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def _begin_sqlite(conn) -> None:  # noqa: ANN001 - SQLAlchemy event
    # Writers take the lock up front: in WAL mode a deferred transaction that later
    # upgrades to a write fails with SQLITE_BUSY at once instead of waiting its turn.
    immediate = conn.get_execution_options().get("assay_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str | None = None) -> Engine:
    """A new engine for `url` (default: the configured workspace)."""
    url = normalise_url(url or database_url())
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def get_engine(url: str | None = None) -> Engine:
    """One shared engine per URL in this process (thread-safe)."""
    key = normalise_url(url or database_url())
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = make_engine(key)
        return engine


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(engine: Engine, *, write: bool = True) -> Iterator[Session]:
    """A transaction: commit on success, roll back on any error.

    `write=False` for read-only work, so readers never queue behind writers."""
    session = Session(engine, expire_on_commit=False)
    if write:
        session.connection(execution_options={"assay_write": True})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
