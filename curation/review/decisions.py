"""Review decisions are append-only events. The current decision of a sample is
its latest event; `Sample.decision` mirrors it, written in the same transaction,
so filters and queues stay index-backed. Undo appends an event too.

Each reviewer's *live* decisions (`live_labels`) are their human events minus the
undone ones: the evidence for reviewer statistics and agreement."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Engine, exists, select, update
from sqlalchemy.orm import aliased

from curation.auth.roles import Action, Actor, writes
from curation.store.db import session_scope
from curation.store.models import Decision, Sample

ACTIONS = ("accept", "reject", "skip")
#: An event that returns a sample to "undecided" (written by undo).
CLEAR = "clear"
REASON_TAGS = (
    "wrong answer",
    "incomplete",
    "unsafe",
    "low quality",
    "off-topic",
    "formatting",
    "duplicate",
    "hallucination",
    "great example",
)
_UNDO = aliased(Decision)


@writes(Action.DECIDE)
def record_decision(
    engine: Engine,
    actor: Actor,
    sample_id: int,
    action: str,
    *,
    reason_tags: Sequence[str] = (),
    note: str = "",
    bulk_event_id: int | None = None,
) -> int:
    """Append a decision event by `actor` (stored under their name) and update the
    sample's current decision. Returns the event id."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    reviewer = actor.name
    with session_scope(engine) as session:
        # Lock the sample row so concurrent events on it commit in id order (PostgreSQL;
        # SQLite's BEGIN IMMEDIATE already serialises writers).
        if session.get(Sample, sample_id, with_for_update=True) is None:
            raise KeyError(f"no sample {sample_id}")
        event = Decision(
            sample_id=sample_id,
            reviewer=reviewer,
            action=action,
            reason_tags=list(reason_tags),
            note=note,
            bulk_event_id=bulk_event_id,
        )
        session.add(event)
        session.flush()
        _sync_current(session, sample_id)
        return event.id


def _sync_current(session, sample_id: int) -> None:  # noqa: ANN001 - a Session
    """Copy the latest event's action onto the sample (inside the writer's transaction)."""
    latest = session.scalar(
        select(Decision.action).where(Decision.sample_id == sample_id).order_by(Decision.id.desc()).limit(1)
    )
    current = None if latest in (None, CLEAR) else latest
    session.execute(update(Sample).where(Sample.id == sample_id).values(decision=current))


@writes(Action.DECIDE)
def undo_last(engine: Engine, actor: Actor, sample_id: int | None = None) -> int | None:
    """Undo `actor`'s latest decision (on `sample_id` if given): appends an event
    restoring what the sample's decision was before it. Returns the undone event id.

    Decisions made by a bulk action are undone with the bulk event
    (`curation.review.bulk.undo_bulk`), never one by one here."""
    undone = undo_last_decision(engine, actor, sample_id)
    return None if undone is None else undone[0]


@writes(Action.DECIDE)
def undo_last_decision(engine: Engine, actor: Actor, sample_id: int | None = None) -> tuple[int, int] | None:
    """Like `undo_last`, returning (undone event id, its sample id) so a caller can
    show that sample again. Only the actor's own decisions are undone."""
    reviewer = actor.name
    with session_scope(engine) as session:
        query = select(Decision).where(
            Decision.reviewer == reviewer,
            Decision.action != CLEAR,
            Decision.undoes_id.is_(None),
            Decision.bulk_event_id.is_(None),
            ~exists().where(_UNDO.undoes_id == Decision.id),
        )
        if sample_id is not None:
            query = query.where(Decision.sample_id == sample_id)
        target = session.scalar(query.order_by(Decision.id.desc()).limit(1))
        if target is None:
            return None
        session.get(Sample, target.sample_id, with_for_update=True)
        before = session.scalar(
            select(Decision.action)
            .where(Decision.sample_id == target.sample_id, Decision.id < target.id)
            .order_by(Decision.id.desc())
            .limit(1)
        )
        session.add(
            Decision(
                sample_id=target.sample_id,
                reviewer=reviewer,
                action=before if before in ACTIONS else CLEAR,
                reason_tags=[],
                note=f"undo of decision {target.id}",
                undoes_id=target.id,
            )
        )
        session.flush()
        _sync_current(session, target.sample_id)
        return target.id, target.sample_id


def decided_by(reviewer: str, sample_id: ColumnElement[int]) -> ColumnElement[bool]:
    """SQL condition: `reviewer` has a live decision (accept, reject or skip, not
    undone) on the sample `sample_id` refers to. Index-backed: (sample_id, id) and
    (undoes_id)."""
    event = aliased(Decision)
    undo = aliased(Decision)
    return exists().where(
        event.sample_id == sample_id,
        event.reviewer == reviewer,
        event.undoes_id.is_(None),
        event.action.in_(ACTIONS),
        ~exists().where(undo.undoes_id == event.id),
    )


def latest_is_human(sample_id: ColumnElement[int]) -> ColumnElement[bool]:
    """SQL condition: the sample's latest event was not written by a bulk action
    (a sample with no events passes too). Used to keep bulk decisions out of the
    evidence about verifiers and the spot-check."""
    event = aliased(Decision)
    latest_bulk = (
        select(event.bulk_event_id)
        .where(event.sample_id == sample_id)
        .order_by(event.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return latest_bulk.is_(None)


def current_decision(engine: Engine, sample_id: int) -> str | None:
    """The latest event's action, read from the event log itself (not the mirror)."""
    with session_scope(engine, write=False) as session:
        latest = session.scalar(
            select(Decision.action)
            .where(Decision.sample_id == sample_id)
            .order_by(Decision.id.desc())
            .limit(1)
        )
    return None if latest in (None, CLEAR) else latest


def human_events(engine: Engine, batch_id: int | None) -> list[Any]:
    """Human (non-bulk) decision events, oldest first, of one batch or of all."""
    query = select(
        Decision.id,
        Decision.sample_id,
        Decision.reviewer,
        Decision.action,
        Decision.undoes_id,
        Decision.created_at,
    ).where(Decision.bulk_event_id.is_(None))
    if batch_id is not None:
        # A correlated lookup, so the (small) decision log drives the query, not the batch.
        query = query.where(
            select(Sample.batch_id).where(Sample.id == Decision.sample_id).scalar_subquery() == batch_id
        )
    with session_scope(engine, write=False) as session:
        return list(session.execute(query.order_by(Decision.id)))


def live_stacks(events: list[Any]) -> dict[tuple[int, str], list[Any]]:
    """Each (sample, reviewer)'s stack of live decision events: undo removes its target."""
    stacks: dict[tuple[int, str], list[Any]] = defaultdict(list)
    by_id = {}
    for event in events:
        if event.undoes_id is not None:
            target = by_id.get(event.undoes_id)
            if target is not None:
                stack = stacks[(target.sample_id, target.reviewer)]
                if target in stack:
                    stack.remove(target)
            continue
        if event.action in ACTIONS:
            by_id[event.id] = event
            stacks[(event.sample_id, event.reviewer)].append(event)
    return stacks


def live_labels(engine: Engine, batch_id: int | None) -> dict[int, dict[str, str]]:
    """{sample id: {reviewer: their live decision}} from human events."""
    labels: dict[int, dict[str, str]] = defaultdict(dict)
    for (sample_id, reviewer), stack in live_stacks(human_events(engine, batch_id)).items():
        if stack:
            labels[sample_id][reviewer] = stack[-1].action
    return dict(labels)
