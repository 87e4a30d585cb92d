"""Store side of generation: the batch row, one request row per slot, a writer
thread that commits results as they arrive, the response cache, final stats.

Every (batch, item, candidate) slot exists exactly once: rows are inserted with
conflict-tolerance against the unique constraints on samples and
generation_requests, so a resumed or repeated run can never duplicate a slot.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, and_, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from curation.data import content_hash
from curation.store.db import session_scope
from curation.store.models import Batch, GenerationRequest, ResponseCache, Sample, utcnow

CHUNK = 500
#: The INSERT of each dialect that can skip rows conflicting with a unique constraint.
_CONFLICT_TOLERANT_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
_TIMED_OUT = object()


def insert_ignore(engine: Engine, table: Any) -> Any:
    """INSERT that skips rows conflicting with a unique constraint."""
    dialect_insert = _CONFLICT_TOLERANT_INSERTS.get(engine.dialect.name)
    if dialect_insert is None:
        return insert(table).prefix_with("IGNORE")
    return dialect_insert(table).on_conflict_do_nothing()


@dataclass
class SlotResult:
    """The outcome of one slot, ready to commit. `sample` is the Sample row (None when failed)."""

    item_index: int
    candidate_index: int
    status: str
    attempts: int = 0
    error_kind: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    cached: bool = False
    sample: dict[str, Any] | None = None


@dataclass
class WriteBatch:
    """What one finished call hands the writer: its slots and, for a live call, the cache entry."""

    slots: list[SlotResult]
    cache: tuple[str, dict[str, Any]] | None = None
    build: Any = None  # callable producing the slots in the writer thread


class Writer:
    """Commits results from a background thread: every `flush_rows` rows or
    `flush_seconds`, whichever comes first, in one transaction per flush. (200 rows:
    at hundreds of answers a second, fewer and larger transactions cost the writer
    about a quarter less CPU than 50-row ones; a slow run still commits every half
    second, so a killed run loses at most that much, which a resume asks for again.)"""

    def __init__(
        self, engine: Engine, batch_id: int, *, flush_rows: int = 200, flush_seconds: float = 0.5
    ) -> None:
        self.engine = engine
        self.batch_id = batch_id
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.error: BaseException | None = None
        self.committed_ok = 0
        self.committed_failed = 0
        self.truncated = 0
        self.parse_errors = 0
        self.flushes = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"generation-writer-{batch_id}", daemon=True)
        self._sample_table = Sample.__table__
        self._request_table = GenerationRequest.__table__
        self._insert_samples = insert_ignore(engine, self._sample_table)
        self._insert_cache = insert_ignore(engine, ResponseCache.__table__)
        self._update_requests = self._make_update()

    def start(self) -> Writer:
        self._thread.start()
        return self

    def put(self, item: WriteBatch) -> None:
        self._queue.put(item)

    def close(self) -> None:
        """Flush everything queued and stop; re-raises a write failure."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _make_update(self) -> Any:
        requests, samples = self._request_table, self._sample_table
        sample_id = (
            select(samples.c.id)
            .where(
                samples.c.batch_id == bindparam("b_batch"),
                samples.c.item_index == bindparam("b_item"),
                samples.c.candidate_index == bindparam("b_cand"),
            )
            .scalar_subquery()
        )
        return (
            update(requests)
            .where(
                requests.c.batch_id == bindparam("b_batch"),
                requests.c.item_index == bindparam("b_item"),
                requests.c.candidate_index == bindparam("b_cand"),
            )
            .values(
                status=bindparam("v_status"),
                attempts=requests.c.attempts + bindparam("v_attempts"),
                error_kind=bindparam("v_error_kind"),
                error=bindparam("v_error"),
                finish_reason=bindparam("v_finish"),
                prompt_tokens=bindparam("v_prompt_tokens"),
                completion_tokens=bindparam("v_completion_tokens"),
                latency_ms=bindparam("v_latency"),
                cached=bindparam("v_cached"),
                sample_id=sample_id,
                updated_at=bindparam("v_now"),
            )
        )

    def _run(self) -> None:
        pending: list[WriteBatch] = []
        rows = 0
        deadline = 0.0
        done = False
        while not done:
            timeout = None if not pending else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout) if timeout != 0.0 else self._queue.get_nowait()
            except queue.Empty:
                item = _TIMED_OUT
            if item is None:
                done = True
            elif isinstance(item, WriteBatch):
                if not pending:
                    deadline = time.monotonic() + self.flush_seconds
                pending.append(item)
                rows += max(1, len(item.slots))
            if pending and (done or rows >= self.flush_rows or time.monotonic() >= deadline):
                if self.error is None:
                    try:
                        self._flush(pending)
                    except BaseException as exc:  # noqa: BLE001 - reported to the engine, which stops
                        self.error = exc
                pending, rows = [], 0

    def _flush(self, items: list[WriteBatch]) -> None:
        now = utcnow()
        samples: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        caches: list[dict[str, Any]] = []
        for item in items:
            slots = item.build() if item.build is not None else item.slots
            item.slots = slots
            if item.cache is not None:
                caches.append({"key": item.cache[0], "payload": item.cache[1], "created_at": now})
            for slot in slots:
                if slot.sample is not None:
                    row = dict(slot.sample)
                    row["batch_id"] = self.batch_id
                    row["item_index"] = slot.item_index
                    row["candidate_index"] = slot.candidate_index
                    row["content_hash"] = content_hash(row["family"], row["prompt"], row["response"])
                    row["created_at"] = now
                    samples.append(row)
                    meta = row.get("metadata") or {}
                    if meta.get("truncated"):
                        self.truncated += 1
                    if meta.get("parse_error"):
                        self.parse_errors += 1
                updates.append(
                    {
                        "b_batch": self.batch_id,
                        "b_item": slot.item_index,
                        "b_cand": slot.candidate_index,
                        "v_status": slot.status,
                        "v_attempts": slot.attempts,
                        "v_error_kind": slot.error_kind,
                        "v_error": slot.error,
                        "v_finish": slot.finish_reason,
                        "v_prompt_tokens": slot.prompt_tokens,
                        "v_completion_tokens": slot.completion_tokens,
                        "v_latency": slot.latency_ms,
                        "v_cached": slot.cached,
                        "v_now": now,
                    }
                )
        with session_scope(self.engine) as session:
            connection = session.connection()
            if samples:
                connection.execute(self._insert_samples, samples)
            if caches:
                connection.execute(self._insert_cache, caches)
            if updates:
                connection.execute(self._update_requests, updates)
        self.flushes += 1
        for update_row in updates:
            if update_row["v_status"] == "ok":
                self.committed_ok += 1
            elif update_row["v_status"] == "failed":
                self.committed_failed += 1


def create_request_rows(engine: Engine, batch_id: int, slots: Iterable[tuple[int, int]]) -> None:
    """One pending GenerationRequest per slot (existing rows are left as they are)."""
    statement = insert_ignore(engine, GenerationRequest.__table__)
    chunk: list[dict[str, Any]] = []
    now = utcnow()

    def write(rows: list[dict[str, Any]]) -> None:
        with session_scope(engine) as session:
            session.connection().execute(statement, rows)

    for item_index, candidate_index in slots:
        chunk.append(
            {
                "batch_id": batch_id,
                "item_index": item_index,
                "candidate_index": candidate_index,
                "status": "pending",
                "attempts": 0,
                "cached": False,
                "updated_at": now,
            }
        )
        if len(chunk) >= 5000:
            write(chunk)
            chunk = []
    if chunk:
        write(chunk)


def finished_slots(engine: Engine, batch_id: int) -> set[tuple[int, int]]:
    """Slots that need no request: answered (ok) or deliberately skipped."""
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(GenerationRequest.item_index, GenerationRequest.candidate_index).where(
                GenerationRequest.batch_id == batch_id, GenerationRequest.status.in_(("ok", "skipped"))
            )
        ).all()
    return {(row[0], row[1]) for row in rows}


def lookup_cache(engine: Engine, keys: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    with session_scope(engine, write=False) as session:
        for start in range(0, len(keys), CHUNK):
            part = keys[start : start + CHUNK]
            for key, payload in session.execute(
                select(ResponseCache.key, ResponseCache.payload).where(ResponseCache.key.in_(part))
            ):
                found[key] = payload
    return found


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return round(sorted_values[index], 2)


def latency_percentiles(sorted_values: list[float]) -> dict[str, float | None]:
    """{"p50", "p90", "p99"} of sorted latencies (None each when there are none)."""
    return {name: percentile(sorted_values, q) for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}


def token_cost(prices: dict[str, float], prompt_tokens: int, completion_tokens: int) -> float:
    """What the tokens cost at `prices` (per million prompt / completion tokens; absent: free)."""
    return (
        prompt_tokens * float(prices.get("prompt_per_million", 0.0))
        + completion_tokens * float(prices.get("completion_per_million", 0.0))
    ) / 1_000_000


@dataclass
class Totals:
    slots: int = 0
    ok: int = 0
    failed: int = 0
    pending: int = 0
    skipped: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    paid_prompt_tokens: int = 0
    paid_completion_tokens: int = 0
    truncated: int = 0
    parse_errors: int = 0
    failures_by_kind: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float | None] = field(default_factory=dict)


def batch_totals(engine: Engine, batch_id: int, *, latencies: bool = True) -> Totals:
    """Exact totals over every slot of the batch (all runs)."""
    requests = GenerationRequest
    totals = Totals()
    with session_scope(engine, write=False) as session:
        for status, count in session.execute(
            select(requests.status, func.count())
            .where(requests.batch_id == batch_id)
            .group_by(requests.status)
        ):
            if status in ("ok", "failed", "pending", "skipped"):
                setattr(totals, status, count)
            totals.slots += count
        row = session.execute(
            select(
                func.coalesce(func.sum(requests.prompt_tokens), 0),
                func.coalesce(func.sum(requests.completion_tokens), 0),
                func.count().filter(requests.cached.is_(True)),
                func.count().filter(requests.finish_reason == "length"),
                func.count().filter(and_(requests.status == "ok", requests.error_kind == "parse_error")),
            ).where(requests.batch_id == batch_id)
        ).one()
        (
            totals.prompt_tokens,
            totals.completion_tokens,
            totals.cached,
            totals.truncated,
            totals.parse_errors,
        ) = (int(v) for v in row)
        paid = session.execute(
            select(
                func.coalesce(func.sum(requests.prompt_tokens), 0),
                func.coalesce(func.sum(requests.completion_tokens), 0),
            ).where(requests.batch_id == batch_id, requests.cached.is_(False))
        ).one()
        totals.paid_prompt_tokens, totals.paid_completion_tokens = int(paid[0]), int(paid[1])
        totals.failures_by_kind = {
            kind or "unknown": count
            for kind, count in session.execute(
                select(requests.error_kind, func.count())
                .where(requests.batch_id == batch_id, requests.status == "failed")
                .group_by(requests.error_kind)
            )
        }
        if latencies:
            values = sorted(
                v
                for (v,) in session.execute(
                    select(requests.latency_ms).where(
                        requests.batch_id == batch_id,
                        requests.status == "ok",
                        requests.cached.is_(False),
                        requests.latency_ms.is_not(None),
                    )
                )
            )
            totals.latency_ms = latency_percentiles(values)
    return totals


def set_batch_state(engine: Engine, batch_id: int, *, status: str | None = None, **stats: Any) -> None:
    """Update the batch's status and merge `stats` into Batch.stats."""
    with session_scope(engine) as session:
        batch = session.get(Batch, batch_id)
        if batch is None:
            return
        if status is not None:
            batch.status = status
        if stats:
            batch.stats = {**(batch.stats or {}), **stats}
