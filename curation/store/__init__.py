"""The workspace store: SQLite by default, PostgreSQL via ASSAY_DATABASE_URL."""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from curation.store.db import get_engine, make_engine, normalise_url, session_scope
from curation.store.migrate import upgrade

_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def open_store(url: str | None = None) -> Engine:
    """The shared engine for `url`, with the schema migrated to head (once per process)."""
    engine = get_engine(url)
    key = normalise_url(str(engine.url.render_as_string(hide_password=False)))
    with _migrate_lock:
        if key not in _migrated:
            upgrade(engine)
            _migrated.add(key)
    return engine


__all__ = ["open_store", "make_engine", "get_engine", "session_scope", "upgrade"]
