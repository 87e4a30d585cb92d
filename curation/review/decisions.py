"""Review decisions are append-only events. The current decision of a sample is
its latest event; `Sample.decision` mirrors it, written in the same transaction,
so filters and queues stay index-backed. Undo appends an event too."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, select, update

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


def record_decision(
    engine: Engine,
    sample_id: int,
    reviewer: str,
    action: str,
    *,
    reason_tags: Sequence[str] = (),
    note: str = "",
    bulk_event_id: int | None = None,
) -> int:
    """Append a decision event and update the sample's current decision. Returns the event id."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    reviewer = reviewer.strip()
    if not reviewer:
        raise ValueError("a reviewer name is required to record a decision")
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


def undo_last(engine: Engine, reviewer: str, sample_id: int | None = None) -> int | None:
    """Undo `reviewer`'s latest decision (on `sample_id` if given): appends an event
    restoring what the sample's decision was before it. Returns the undone event id."""
    with session_scope(engine) as session:
        query = select(Decision).where(
            Decision.reviewer == reviewer, Decision.action != CLEAR, Decision.undoes_id.is_(None)
        )
        if sample_id is not None:
            query = query.where(Decision.sample_id == sample_id)
        undone_ids = select(Decision.undoes_id).where(Decision.undoes_id.is_not(None))
        target = session.scalar(query.where(Decision.id.not_in(undone_ids)).order_by(Decision.id.desc()).limit(1))
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
        return target.id


def current_decision(engine: Engine, sample_id: int) -> str | None:
    """The latest event's action, read from the event log itself (not the mirror)."""
    with session_scope(engine, write=False) as session:
        latest = session.scalar(
            select(Decision.action).where(Decision.sample_id == sample_id).order_by(Decision.id.desc()).limit(1)
        )
    return None if latest in (None, CLEAR) else latest
