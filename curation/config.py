"""Where things live. The default workspace is a SQLite file under data/."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
DEMO_DIR = DATA_DIR / "demo"
DEFAULT_WORKSPACE = DATA_DIR / "workspace.db"

#: Limits of the interchange format; a field over these is refused on import.
MAX_FIELD_CHARS = 200_000
MAX_LINE_BYTES = 2_000_000


def database_url() -> str:
    """`ASSAY_DATABASE_URL` if set, else the SQLite workspace under data/."""
    return os.environ.get("ASSAY_DATABASE_URL") or f"sqlite:///{DEFAULT_WORKSPACE}"


def redact_url(url: str) -> str:
    """A database URL fit for display: the password never shows."""
    return make_url(url).render_as_string(hide_password=True)


def workspace_data_dir(url: str) -> Path:
    """The folder that holds a workspace's data: a SQLite workspace's own folder, else
    (a server database) data/."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database).resolve().parent
    return DATA_DIR


def default_export_dir(url: str) -> Path:
    """Where exports go unless told otherwise: exports/ beside the workspace's data."""
    return workspace_data_dir(url) / "exports"
