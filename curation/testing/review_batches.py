"""Review-ready batches written straight into the store: samples with verdicts and
an overall outcome, inserted in bulk (executemany of plain dicts). Used by the
review tests, the browser test and benchmarks/review.py; not by the app."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert, select, update

from curation.store.db import session_scope
from curation.store.models import Batch, Sample, Verdict, utcnow
from curation.verification.versions import current_versions

CHUNK = 20_000
FAMILIES = ("math", "code", "instruction", "open")


@dataclass
class ReviewRow:
    prompt: str
    response: str
    family: str = "math"
    #: (verifier, passed, reason) triples.
    verdicts: Sequence[tuple[str, bool | None, str]] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)


def overall(verdicts: Sequence[tuple[str, bool | None, str]]) -> bool | None:
    """The sample's outcome: failed if any verifier failed, passed if the others
    passed, None when no verifier could judge."""
    outcomes = [passed for _, passed, _ in verdicts if passed is not None]
    if not outcomes:
        return None
    return all(outcomes)


def insert_review_batch(engine: Engine, name: str, rows: Iterable[ReviewRow]) -> tuple[int, list[int]]:
    """A new ready batch holding `rows`, with their verdicts. Returns (batch id, sample ids)."""
    with session_scope(engine) as session:
        batch = Batch(name=name, origin="synthetic", source="synthetic:review", status="importing")
        session.add(batch)
        session.flush()
        batch_id = batch.id
    verdicts_by_index: dict[int, Sequence[tuple[str, bool | None, str]]] = {}
    sample_rows: list[dict[str, Any]] = []
    now = utcnow()
    count = 0

    def flush_samples() -> None:
        with session_scope(engine) as session:
            session.execute(insert(Sample), sample_rows)
        sample_rows.clear()

    for index, row in enumerate(rows):
        text = f"{row.prompt}\x00{row.response}"
        sample_rows.append(
            {
                "batch_id": batch_id,
                "item_index": index,
                "candidate_index": 0,
                "family": row.family,
                "prompt": row.prompt,
                "response": row.response,
                "reference": row.reference,
                "meta": row.metadata,
                "content_hash": hashlib.sha256(text.encode()).hexdigest(),
                "passed": overall(row.verdicts),
                "created_at": now,
            }
        )
        if row.verdicts:
            verdicts_by_index[index] = row.verdicts
        count += 1
        if len(sample_rows) >= CHUNK:
            flush_samples()
    if sample_rows:
        flush_samples()
    with session_scope(engine, write=False) as session:
        ids = list(
            session.scalars(select(Sample.id).where(Sample.batch_id == batch_id).order_by(Sample.item_index))
        )
    verdict_rows: list[dict[str, Any]] = []

    def flush_verdicts() -> None:
        with session_scope(engine) as session:
            session.execute(insert(Verdict), verdict_rows)
        verdict_rows.clear()

    versions = current_versions()
    for index, verdicts in verdicts_by_index.items():
        for verifier, passed, reason in verdicts:
            verdict_rows.append(
                {
                    "sample_id": ids[index],
                    "verifier": verifier,
                    "version": versions.get(verifier, "1"),
                    "passed": passed,
                    "score": None if passed is None else float(passed),
                    "reason": reason,
                    "details": {"reason": reason},
                    "created_at": now,
                }
            )
        if len(verdict_rows) >= CHUNK:
            flush_verdicts()
    if verdict_rows:
        flush_verdicts()
    with session_scope(engine) as session:
        session.execute(
            update(Batch).where(Batch.id == batch_id).values(status="ready", stats={"imported": count})
        )
    return batch_id, ids


def mixed_rows(n: int, *, seed: int = 0, clusters: int = 0) -> Iterator[ReviewRow]:
    """`n` rows with a realistic mix: ~70 % every verifier passed, ~12 % all failed,
    ~10 % verifiers disagree (the judge against a checker), ~8 % one could not judge."""
    rng = random.Random(seed)
    reasons = ("wrong final answer", "tests failed", "instruction not followed")
    for i in range(n):
        family = FAMILIES[i % len(FAMILIES)]
        roll = rng.random()
        if roll < 0.70:
            verdicts = [("quality", True, "ok"), ("checker", True, "correct"), ("judge", True, "good")]
        elif roll < 0.82:
            reason = reasons[i % len(reasons)]
            verdicts = [
                ("quality", False, "repetitive"),
                ("checker", False, reason),
                ("judge", False, "poor answer"),
            ]
        elif roll < 0.92:
            verdicts = [
                ("quality", True, "ok"),
                ("checker", False, reasons[i % len(reasons)]),
                ("judge", True, "good"),
            ]
        else:
            verdicts = [("quality", True, "ok"), ("checker", None, "timeout"), ("judge", True, "good")]
        metadata: dict[str, Any] = {"n": i}
        if clusters:
            metadata["cluster"] = f"c{i % clusters}"
        yield ReviewRow(
            prompt=f"Problem {i}: what is {i} times {i % 97}? Explain step by step.",
            response=f"We multiply {i} by {i % 97}. " * 6 + f"The answer is {i * (i % 97)}.",
            family=family,
            verdicts=verdicts,
            metadata=metadata,
            reference={"answer": str(i * (i % 97))},
        )
