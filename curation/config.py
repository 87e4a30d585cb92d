"""Where things live. The default workspace is a SQLite file under data/."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
DEMO_DIR = DATA_DIR / "demo"
DEFAULT_WORKSPACE = DATA_DIR / "workspace.db"
DEFAULT_EXPORT_DIR = PROJECT_ROOT / "exports"

#: Limits of the interchange format; a field over these is refused on import.
MAX_FIELD_CHARS = 200_000
MAX_LINE_BYTES = 2_000_000


def database_url() -> str:
    """`ASSAY_DATABASE_URL` if set, else the SQLite workspace under data/."""
    return os.environ.get("ASSAY_DATABASE_URL") or f"sqlite:///{DEFAULT_WORKSPACE}"


def redact_url(url: str) -> str:
    """A database URL fit for display: the password never shows."""
    return make_url(url).render_as_string(hide_password=True)
