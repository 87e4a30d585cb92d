"""Bulk review actions on a rule: one BulkEvent naming the rule, one Decision per
sample pointing at it (`bulk_event_id`).

* `bulk_accept_passed` — accept every undecided verifier-passed sample of a batch,
  refused unless the spot-check's Clopper–Pearson bound holds.
* `bulk_reject_failures` — reject every undecided sample a named verifier failed
  with a given reason.
* `undo_bulk` — append reversing events (a new BulkEvent, action "undo").

A bulk action only ever touches undecided samples: it never overrides a human.

Each action is one transaction, so nothing is ever half-applied: the samples are
claimed with one ``UPDATE … WHERE decision IS NULL … RETURNING id`` (PostgreSQL
re-checks each row under its lock, so a reviewer deciding a sample at the same
moment wins and that sample is left out), then their events are inserted with
INSERT … SELECT by chunks of ids. About 80k samples take a second and a half on
SQLite (benchmarks/review.py); SQLite writers queue behind it for that long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    Integer,
    String,
    Text,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from curation.review.decisions import CLEAR
from curation.review.sampling import DEFAULT_CONFIDENCE, DEFAULT_MAX_ERROR, acceptance_summary
from curation.store.db import session_scope
from curation.store.models import Batch, BulkEvent, Decision, Sample, Verdict, utcnow

CHUNK = 5000
UNDO = "undo"


class BoundNotMet(ValueError):
    """Bulk acceptance refused: the spot-check does not support the claim yet."""


@dataclass(frozen=True)
class BulkResult:
    bulk_event_id: int
    action: str
    count: int
    rule: str


def _check_reviewer(reviewer: str) -> str:
    reviewer = reviewer.strip()
    if not reviewer:
        raise ValueError("a reviewer name is required for a bulk action")
    return reviewer


def _batch_name(session: Session, batch_id: int) -> str:
    name = session.scalar(select(Batch.name).where(Batch.id == batch_id))
    if name is None:
        raise KeyError(f"no batch {batch_id}")
    return name


def _chunks(items: Sequence[Any], size: int = CHUNK) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _event_columns(
    reviewer: str, action: str, reason_tags: Sequence[str], note: str, bulk_event_id: int
) -> list[Any]:
    """Constant columns of a bulk's decision rows, typed so JSON and timestamps are
    stored exactly as the ORM stores them."""
    return [
        literal(reviewer, String),
        literal(action, String),
        literal(list(reason_tags), JSON),
        literal(note, Text),
        literal(bulk_event_id, Integer),
        literal(utcnow(), DateTime(timezone=True)),
    ]


_EVENT_FIELDS = ["reviewer", "action", "reason_tags", "note", "bulk_event_id", "created_at"]


def _apply(
    session: Session,
    event: BulkEvent,
    selection: list[Any],
    *,
    reason_tags: Sequence[str] = (),
    note: str = "",
) -> int:
    """Set the decision of the undecided samples matching `selection` and append
    their events (INSERT … SELECT by chunks of ids: no per-row Python). Returns how many."""
    ids = list(
        session.scalars(
            update(Sample)
            .where(*selection, Sample.decision.is_(None))
            .values(decision=event.action)
            .returning(Sample.id)
            .execution_options(synchronize_session=False)
        )
    )
    constants = _event_columns(event.reviewer, event.action, reason_tags, note, event.id)
    for chunk in _chunks(ids):
        session.execute(
            insert(Decision).from_select(
                ["sample_id", *_EVENT_FIELDS], select(Sample.id, *constants).where(Sample.id.in_(chunk))
            )
        )
    event.count = len(ids)
    return len(ids)


def _passed_selection(batch_id: int) -> list[Any]:
    return [Sample.batch_id == batch_id, Sample.passed.is_(True)]


def _failure_selection(batch_id: int, verifier: str, reason: str) -> list[Any]:
    return [
        Sample.batch_id == batch_id,
        exists().where(
            Verdict.sample_id == Sample.id,
            Verdict.verifier == verifier,
            Verdict.passed.is_(False),
            Verdict.reason == reason,
        ),
    ]


def preview_accept_passed(engine: Engine, batch_id: int) -> int:
    """How many samples `bulk_accept_passed` would accept now."""
    with session_scope(engine, write=False) as session:
        return (
            session.scalar(
                select(func.count()).where(*_passed_selection(batch_id), Sample.decision.is_(None))
            )
            or 0
        )


def preview_reject_failures(engine: Engine, batch_id: int, verifier: str, reason: str) -> int:
    """How many samples `bulk_reject_failures` would reject now."""
    with session_scope(engine, write=False) as session:
        return (
            session.scalar(
                select(func.count()).where(
                    *_failure_selection(batch_id, verifier, reason), Sample.decision.is_(None)
                )
            )
            or 0
        )


def failure_reasons(engine: Engine, batch_id: int, *, limit: int = 50) -> list[tuple[str, str, int]]:
    """(verifier, reason, undecided samples) of the batch's failed verdicts, most common first."""
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(Verdict.verifier, Verdict.reason, func.count(func.distinct(Verdict.sample_id)))
            .join(Sample, Sample.id == Verdict.sample_id)
            .where(Sample.batch_id == batch_id, Sample.decision.is_(None), Verdict.passed.is_(False))
            .group_by(Verdict.verifier, Verdict.reason)
            .order_by(func.count(func.distinct(Verdict.sample_id)).desc(), Verdict.verifier, Verdict.reason)
            .limit(limit)
        ).all()
    return [(verifier, reason, n) for verifier, reason, n in rows]


def bulk_accept_passed(
    engine: Engine,
    batch_id: int,
    reviewer: str,
    *,
    max_error: float = DEFAULT_MAX_ERROR,
    confidence: float = DEFAULT_CONFIDENCE,
) -> BulkResult:
    """Accept all undecided verifier-passed samples of a batch, once the spot-check
    supports "error rate ≤ max_error at `confidence`". Raises BoundNotMet otherwise."""
    reviewer = _check_reviewer(reviewer)
    summary = acceptance_summary(engine, batch_id, max_error, confidence, with_population=False)
    if not summary.holds:
        raise BoundNotMet(
            f"the spot-check does not support error rate ≤ {max_error:.1%} at {confidence:.0%} confidence yet: "
            f"{summary.failures} failure(s) in {summary.reviewed} read, upper bound {summary.upper_bound:.2%}; "
            f"read {summary.remaining} more random samples"
        )
    with session_scope(engine) as session:
        name = _batch_name(session, batch_id)
        rule = (
            f"accept all verifier-passed samples of batch {name!r}: spot-check error rate ≤ {max_error:.1%} "
            f"at {confidence:.0%} confidence ({summary.failures} failure(s) in {summary.reviewed}, "
            f"upper bound {summary.upper_bound:.2%})"
        )
        event = BulkEvent(
            reviewer=reviewer,
            action="accept",
            rule=rule,
            filter={
                "batch_id": batch_id,
                "passed": True,
                "decision": "undecided",
                "max_error": max_error,
                "confidence": confidence,
                "reviewed": summary.reviewed,
                "failures": summary.failures,
                "upper_bound": summary.upper_bound,
            },
        )
        session.add(event)
        session.flush()
        count = _apply(session, event, _passed_selection(batch_id), note=f"bulk {event.id}: {rule}")
        return BulkResult(event.id, "accept", count, rule)


def bulk_reject_failures(
    engine: Engine,
    batch_id: int,
    verifier: str,
    reason: str,
    reviewer: str,
    *,
    reason_tags: Sequence[str] = (),
) -> BulkResult:
    """Reject all undecided samples of a batch that `verifier` failed with exactly `reason`."""
    reviewer = _check_reviewer(reviewer)
    with session_scope(engine) as session:
        name = _batch_name(session, batch_id)
        rule = f"reject the samples of batch {name!r} that {verifier} failed with reason {reason!r}"
        event = BulkEvent(
            reviewer=reviewer,
            action="reject",
            rule=rule,
            filter={
                "batch_id": batch_id,
                "verifier": verifier,
                "reason": reason,
                "passed": False,
                "decision": "undecided",
            },
        )
        session.add(event)
        session.flush()
        count = _apply(
            session,
            event,
            _failure_selection(batch_id, verifier, reason),
            reason_tags=reason_tags,
            note=f"bulk {event.id}: {verifier}: {reason}",
        )
        return BulkResult(event.id, "reject", count, rule)


def undo_bulk(engine: Engine, bulk_event_id: int, reviewer: str) -> BulkResult:
    """Undo a bulk action: each of its decisions that is still its sample's latest
    event gets a reversing event (the sample becomes undecided again), under a new
    BulkEvent of action "undo". Samples decided again since are left alone."""
    reviewer = _check_reviewer(reviewer)
    with session_scope(engine) as session:
        original = session.get(BulkEvent, bulk_event_id)
        if original is None:
            raise KeyError(f"no bulk event {bulk_event_id}")
        if original.action == UNDO:
            raise ValueError("an undo cannot be undone; run the bulk action again")
        for other in session.scalars(select(BulkEvent).where(BulkEvent.action == UNDO)):
            if (other.filter or {}).get("undoes_bulk_event_id") == bulk_event_id:
                raise ValueError(f"bulk event {bulk_event_id} was already undone by bulk event {other.id}")
        rule = f"undo of bulk event {bulk_event_id}: {original.rule}"
        event = BulkEvent(
            reviewer=reviewer, action=UNDO, rule=rule, filter={"undoes_bulk_event_id": bulk_event_id}
        )
        session.add(event)
        session.flush()
        bulk_decision = aliased(Decision)
        later = aliased(Decision)
        still_latest = select(bulk_decision.sample_id).where(
            bulk_decision.bulk_event_id == bulk_event_id,
            ~exists().where(later.sample_id == bulk_decision.sample_id, later.id > bulk_decision.id),
        )
        ids = list(
            session.scalars(
                update(Sample)
                .where(Sample.id.in_(still_latest), Sample.decision == original.action)
                .values(decision=None)
                .returning(Sample.id)
                .execution_options(synchronize_session=False)
            )
        )
        constants = _event_columns(reviewer, CLEAR, (), f"undo of bulk event {bulk_event_id}", event.id)
        for chunk in _chunks(ids):
            session.execute(
                insert(Decision).from_select(
                    ["sample_id", *_EVENT_FIELDS, "undoes_id"],
                    select(Decision.sample_id, *constants, Decision.id).where(
                        Decision.bulk_event_id == bulk_event_id, Decision.sample_id.in_(chunk)
                    ),
                )
            )
        event.count = len(ids)
        return BulkResult(event.id, UNDO, len(ids), rule)


@dataclass(frozen=True)
class BulkEventView:
    id: int
    reviewer: str
    action: str
    rule: str
    count: int
    created_at: Any
    undone_by: int | None


def list_bulk_events(engine: Engine, batch_id: int | None = None) -> list[BulkEventView]:
    """Bulk events, newest first (of one batch when given), with the undo that reverted each."""
    with session_scope(engine, write=False) as session:
        events = list(session.scalars(select(BulkEvent).order_by(BulkEvent.id.desc())))
    undone_by = {(e.filter or {}).get("undoes_bulk_event_id"): e.id for e in events if e.action == UNDO}
    by_id = {e.id: e for e in events}

    def batch_of(event: BulkEvent) -> int | None:
        if event.action == UNDO:
            original = by_id.get((event.filter or {}).get("undoes_bulk_event_id"))
            return batch_of(original) if original is not None else None
        return (event.filter or {}).get("batch_id")

    return [
        BulkEventView(e.id, e.reviewer, e.action, e.rule, e.count, e.created_at, undone_by.get(e.id))
        for e in events
        if batch_id is None or batch_of(e) == batch_id
    ]
