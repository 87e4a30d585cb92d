"""Import a file in the interchange format into a new batch, all or nothing.

One streaming pass validates every record and stages the valid ones, chunk by
chunk, under a batch whose status is "importing", which every reader ignores.
Only a clean file flips the batch to "ready"; any bad record discards what was
staged and raises an error naming the line and field. A cancelled or killed
import is cleaned up by the job's cleanup hook, so no half-imported batch is
ever visible.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, select, update

from curation.auth.roles import Action, Actor, writes
from curation.io.interchange import RecordScan, detect_format
from curation.store.db import session_scope
from curation.store.models import Batch, Sample, utcnow

ORIGINS = ("synthetic", "real", "eval")
CHUNK_ROWS = 2000

Progress = Callable[[int, int | None, str], None]


def _no_progress(_done: int, _total: int | None, _message: str) -> None:
    return None


@writes(Action.IMPORT)
def import_file(
    engine: Engine,
    actor: Actor,
    path: str | Path,
    batch_name: str,
    *,
    origin: str = "synthetic",
    source: str | None = None,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Validate then import `path` as batch `batch_name`. Returns counts.

    Raises InterchangeError (naming line and field) or ValueError; in both cases
    the store is unchanged."""
    path = Path(path)
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {', '.join(ORIGINS)}, got {origin!r}")
    batch_name = batch_name.strip()
    if not batch_name:
        raise ValueError("a batch name is required")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    fmt = detect_format(path)
    with session_scope(engine, write=False) as session:
        if session.scalar(select(Batch.id).where(Batch.name == batch_name)) is not None:
            raise ValueError(f"a batch named {batch_name!r} already exists; choose another name")

    require_response = origin != "eval"
    with session_scope(engine) as session:
        batch = Batch(
            name=batch_name,
            origin=origin,
            source=source or f"import:{path.name}",
            status="importing",
            generation_config={"imported_from": path.name, "format": fmt},
        )
        session.add(batch)
        session.flush()
        batch_id = batch.id

    try:
        total, families = _write_rows(engine, batch_id, path, fmt, require_response, progress)
    except BaseException:
        discard_partial_import(engine, {"batch": batch_name})
        raise
    family = next(iter(families)) if len(families) == 1 else None
    with session_scope(engine) as session:
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(status="ready", family=family, stats={"imported": total, "families": families})
        )
    progress(total, total, f"imported {total:,} records")
    return {"batch": batch_name, "batch_id": batch_id, "imported": total, "families": families}


def _write_rows(
    engine: Engine, batch_id: int, path: Path, fmt: str, require_response: bool, progress: Progress
) -> tuple[int, dict[str, int]]:
    """One pass: validate every record and stage the valid ones under the hidden
    batch. Any error makes the whole file fail (the caller discards the staged rows)."""
    scan = RecordScan(path, require_response=require_response, fmt=fmt)
    families: dict[str, int] = {}
    chunk: list[dict[str, Any]] = []
    table = Sample.__table__

    def flush() -> None:
        with session_scope(engine) as session:
            session.execute(table.insert(), chunk)
        chunk.clear()

    now = utcnow()
    for record in scan:
        if scan.errors:
            continue  # keep reading only to report further problems
        families[record.family] = families.get(record.family, 0) + 1
        chunk.append(
            {
                "batch_id": batch_id,
                "external_id": record.id,
                "item_index": scan.count - 1,
                "candidate_index": 0,
                "family": record.family,
                "prompt": record.prompt,
                "response": record.response,
                "reference": record.reference,
                "metadata": record.metadata,
                "content_hash": record.content_hash,
                "created_at": now,
            }
        )
        if len(chunk) >= CHUNK_ROWS:
            flush()
            progress(scan.count, None, f"imported {scan.count:,} records")
    scan.raise_if_errors()
    if chunk:
        flush()
    return scan.count, families


def discard_partial_import(engine: Engine, params: dict[str, Any]) -> None:
    """Remove a batch that an interrupted import left in the "importing" state."""
    with session_scope(engine) as session:
        batch_id = session.scalar(
            select(Batch.id).where(Batch.name == params["batch"], Batch.status == "importing")
        )
        if batch_id is not None:
            session.execute(delete(Sample).where(Sample.batch_id == batch_id))
            session.execute(delete(Batch).where(Batch.id == batch_id))
