"""Big exports: read in id order on every core, then put the rows in the plan's order.

Reading a million rows in shuffled order is a million random lookups; reading them in
id order walks the tables sequentially. So for a big export:

1. pieces of the split's ids *sorted* are read and encoded by forked worker processes
   (fetch, provenance JSON, then an Arrow table: the format's columns, or one `line`
   column for text formats);
2. the parent tags each row with its output position and scatters the piece into
   bucket files (Arrow IPC), bucket k holding positions [k·B, (k+1)·B);
3. each bucket in turn is read back, sorted by position and written.

Memory stays bounded by `IN_FLIGHT` pieces plus one bucket whatever the export's size;
the buckets take about the output's uncompressed size on disk, next to it, and are
removed at the end. Workers are forked (the `python -m curation` entry point cannot be
re-imported by spawn) and open their own engine. Small exports, in-memory stores and
formats without `encode_table` take the serial path."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from curation.export.rows import BatchInfo, ExportRecord, iter_records
from curation.io.writers import WRITERS
from curation.store.db import make_engine

#: Exports with fewer rows than this are written in-process.
PARALLEL_MIN_ROWS = 200_000
PIECE_ROWS = 20_000
#: Rows per reorder bucket (the most rows held at once while putting rows in order).
BUCKET_ROWS = 50_000
IN_FLIGHT = 4

_worker_engines: dict[str, Engine] = {}


class Tally:
    """Verifier outcomes of exported synthetic rows and rows per batch, gathered while writing."""

    def __init__(self) -> None:
        self.verdicts: Counter[tuple[str, str, str]] = Counter()
        self.batches: Counter[str] = Counter()

    def wrap(self, rows: Iterator[ExportRecord]) -> Iterator[ExportRecord]:
        for row in rows:
            self.batches[row.batch] += 1
            if row.source == "synthetic":
                for verifier, version, passed in row.verdicts:
                    outcome = "unknown" if passed is None else "passed" if passed else "failed"
                    self.verdicts[(verifier, version, outcome)] += 1
            yield row

    def merge(self, other: Tally) -> None:
        self.verdicts.update(other.verdicts)
        self.batches.update(other.batches)

    def pass_rates(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for (verifier, version, outcome), n in sorted(self.verdicts.items()):
            entry = out.setdefault(
                f"{verifier}@{version}",
                {"verifier": verifier, "version": version, "passed": 0, "failed": 0, "unknown": 0},
            )
            entry[outcome] += n
        for entry in out.values():
            judged = entry["passed"] + entry["failed"]
            entry["pass_rate"] = None if judged == 0 else round(entry["passed"] / judged, 4)
        return out


def workers() -> int:
    """Worker processes for a big export: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def can_parallelise(engine: Engine, rows: int, writer: Any) -> bool:
    database = engine.url.database or ""
    return (
        rows >= PARALLEL_MIN_ROWS
        and workers() > 1
        and hasattr(writer, "encode_table")
        and "fork" in multiprocessing.get_all_start_methods()
        and not (engine.dialect.name == "sqlite" and database in ("", ":memory:"))
    )


def _encode_piece(
    url: str, fmt: str, ids: list[int], split: str, batches: dict[int, BatchInfo]
) -> tuple[bytes, Tally]:
    """In a worker: rows of `ids` (sorted) as the format's Arrow table, in IPC bytes."""
    import pyarrow as pa  # heavy: only the Arrow formats are written in parallel

    engine = _worker_engines.get(url)
    if engine is None:
        engine = _worker_engines[url] = make_engine(url)
    tally = Tally()
    table = WRITERS.get(fmt)().encode_table(
        tally.wrap(iter_records(engine, ids, split=split, batches=batches))
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return sink.getvalue().to_pybytes(), tally


def write_split(
    engine: Engine,
    writer: Any,
    fmt: str,
    ids: np.ndarray,
    split: str,
    batches: dict[int, BatchInfo],
    path: Path,
    tally: Tally,
    on_piece: Callable[[int], None] | None = None,
) -> int:
    """Write `ids` (in output order) to `path`, reading in id order on worker processes."""
    # heavy: only the Arrow formats are written in parallel
    import pyarrow as pa
    import pyarrow.compute as pc

    url = engine.url.render_as_string(hide_password=False)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    positions = order  # output position of sorted_ids[i]
    n = len(ids)
    buckets = max(1, -(-n // BUCKET_ROWS))
    scratch = Path(tempfile.mkdtemp(prefix=".assay-reorder-", dir=path.parent))
    try:
        sinks: dict[int, Any] = {}
        files: dict[int, Any] = {}
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers(), mp_context=context) as pool:
            starts = list(range(0, n, PIECE_ROWS))
            pending: list[tuple[int, Future]] = []
            submitted = 0
            for _ in starts:
                while submitted < len(starts) and len(pending) < IN_FLIGHT:
                    start = starts[submitted]
                    piece = sorted_ids[start : start + PIECE_ROWS].tolist()
                    pending.append((start, pool.submit(_encode_piece, url, fmt, piece, split, batches)))
                    submitted += 1
                start, future = pending.pop(0)
                data, piece_tally = future.result()
                tally.merge(piece_tally)
                table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
                pos = positions[start : start + table.num_rows]
                table = table.append_column("pos", pa.array(pos, type=pa.int64()))
                bucket_of = pos // BUCKET_ROWS
                for bucket in np.unique(bucket_of):
                    part = table.filter(pa.array(bucket_of == bucket))
                    if bucket not in sinks:
                        files[bucket] = pa.OSFile(str(scratch / f"{bucket}.arrow"), "wb")
                        sinks[bucket] = pa.ipc.new_stream(files[bucket], table.schema)
                    sinks[bucket].write_table(part)
                if on_piece is not None:
                    on_piece(table.num_rows)
        for bucket in sinks:
            sinks[bucket].close()
            files[bucket].close()

        def ordered() -> Iterator[Any]:
            for bucket in range(buckets):
                source = scratch / f"{bucket}.arrow"
                if not source.exists():
                    continue
                with pa.memory_map(str(source)) as mapped:
                    table = pa.ipc.open_stream(mapped).read_all()
                table = table.take(pc.sort_indices(table, sort_keys=[("pos", "ascending")])).drop_columns(
                    ["pos"]
                )
                source.unlink()
                yield table

        return writer.write_tables(ordered(), path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
