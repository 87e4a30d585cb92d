"""The demo workspace: the bundled real reference sets plus small candidate batches."""

from __future__ import annotations

from sqlalchemy import Engine, select

from curation.config import DEMO_DIR
from curation.importer import import_file
from curation.store.db import session_scope
from curation.store.models import Batch

EXAMPLE_BATCH = "example import"


def ensure_demo_workspace(engine: Engine, *, force: bool = False) -> list[str]:
    """Populate an empty workspace (or add what is missing with `force`). Returns the batches created."""
    with session_scope(engine, write=False) as session:
        existing = set(session.scalars(select(Batch.name)))
        if existing and not force:
            return []
    created: list[str] = []
    for path in sorted(DEMO_DIR.glob("reference_*.jsonl")):
        name = "reference: " + path.stem.removeprefix("reference_").replace("_", " ")
        if name not in existing:
            import_file(engine, path, name, origin="real", source=f"bundled:{path.name}")
            created.append(name)
    if EXAMPLE_BATCH not in existing:
        import_file(engine, DEMO_DIR / "example_batch.jsonl", EXAMPLE_BATCH, source="bundled:example_batch.jsonl")
        created.append(EXAMPLE_BATCH)
    return created
