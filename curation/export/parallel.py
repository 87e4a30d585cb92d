"""Big exports use every core: pieces of the plan's ordered ids are read and encoded
by worker processes (fetch, provenance JSON, Arrow batch or JSONL/CSV text) while the
parent writes the encoded pieces to one file, in order.

At most `IN_FLIGHT` pieces are pending at a time, so memory stays bounded by a few
pieces whatever the export's size. Workers are forked (the `python -m curation`
entry point cannot be re-imported by spawn) and open their own engine; the parent's
connections are never used in a child. Small exports, in-memory stores and formats
without `encode` take the serial path."""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from sqlalchemy import Engine

from curation.export.rows import BatchInfo, ExportRecord, iter_records

#: Exports with fewer rows than this are written in-process.
PARALLEL_MIN_ROWS = 200_000
PIECE_ROWS = 20_000
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
                f"{verifier}@{version}", {"verifier": verifier, "version": version, "passed": 0, "failed": 0, "unknown": 0}
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
        and hasattr(writer, "encode")
        and "fork" in multiprocessing.get_all_start_methods()
        and not (engine.dialect.name == "sqlite" and database in ("", ":memory:"))
    )


def _encode_piece(url: str, fmt: str, ids: list[int], split: str, batches: dict[int, BatchInfo]) -> tuple[Any, int, Tally]:
    """In a worker: rows of `ids` encoded by the format's writer."""
    from curation.store.db import make_engine
    from curation.writers import WRITERS

    engine = _worker_engines.get(url)
    if engine is None:
        engine = _worker_engines[url] = make_engine(url)
    tally = Tally()
    data, rows = WRITERS.get(fmt)().encode(tally.wrap(iter_records(engine, ids, split=split, batches=batches)))
    return data, rows, tally


def encoded_pieces(
    engine: Engine,
    fmt: str,
    ids: list[int],
    split: str,
    batches: dict[int, BatchInfo],
    tally: Tally,
    on_piece: Callable[[int], None] | None = None,
) -> Iterator[Any]:
    """(encoded piece, rows) for `ids`, in order, made by worker processes."""
    url = engine.url.render_as_string(hide_password=False)
    pieces = [ids[start : start + PIECE_ROWS] for start in range(0, len(ids), PIECE_ROWS)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers(), mp_context=context) as pool:
        pending: list[Future] = []
        submitted = 0
        for _ in pieces:
            while submitted < len(pieces) and len(pending) < IN_FLIGHT:
                pending.append(pool.submit(_encode_piece, url, fmt, pieces[submitted], split, batches))
                submitted += 1
            data, rows, piece_tally = pending.pop(0).result()
            tally.merge(piece_tally)
            if on_piece is not None:
                on_piece(rows)
            yield data, rows
