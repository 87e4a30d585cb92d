"""Bulk review actions on a rule: one BulkEvent naming the rule, one Decision per
sample pointing at it (`bulk_event_id`).

* `bulk_accept_passed` — accept every undecided verifier-passed sample of a batch,
  refused unless the spot-check's Clopper–Pearson bound holds. "Verifier-passed" is the
  sample's stored outcome (`Sample.passed`), which verification computes from the current
  verifier versions only (`verification.chains.overall_outcome`).
* `bulk_reject_failures` — reject every undecided sample whose verdict of the named
  verifier's current version failed with a given reason.
* `undo_bulk` — append reversing events (a new BulkEvent, action "undo").

Old verdicts are kept when a verifier's version changes; every selection here reads
current verdicts only (`curation.verification.versions`).

A bulk action only ever touches undecided samples: it never overrides a human.

Applied in chunks, resumable. One transaction over a million samples would hold
SQLite's write lock for half a minute, and every reviewer's decision would queue
behind it (and time out). So the BulkEvent is written first, carrying the frozen
selection (its kind, parameters and the highest sample id at that moment) and a
state in its `filter`: "applying", then "done". Each chunk of CHUNK samples is one
transaction that locks the samples (PostgreSQL: FOR UPDATE, so a reviewer deciding
one at the same moment wins and it is left out), sets their decision, appends their
events with INSERT … SELECT, and advances the event's progress (`through`, `count`).
A process that dies midway leaves an event in state "applying": `resume_bulk`
finishes it, idempotently — samples already decided are never selected again. The
page lists such an event with a Resume button; undoing it stops it for good.
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

from curation.auth.roles import Action, Actor, writes
from curation.review.decisions import CLEAR
from curation.review.sampling import DEFAULT_CONFIDENCE, DEFAULT_MAX_ERROR, acceptance_summary
from curation.store.db import session_scope
from curation.store.models import Batch, BulkEvent, Decision, Sample, Verdict, utcnow
from curation.verification.report import ReasonCount, failure_reasons
from curation.verification.versions import current_clause

CHUNK = 10_000
UNDO = "undo"
APPLYING, DONE, ABANDONED = "applying", "done", "abandoned"
ACCEPT_PASSED, REJECT_FAILURES = "accept-passed", "reject-failures"
#: A reviewer's decision applied to samples they chose (the similar samples of one).
SIMILAR = "similar"
#: The decisions `bulk_apply_decision` may apply (a bulk skip says nothing).
APPLICABLE = ("accept", "reject")


class BoundNotMet(ValueError):
    """Bulk acceptance refused: the spot-check does not support the claim yet."""


@dataclass(frozen=True)
class BulkResult:
    bulk_event_id: int
    action: str
    count: int
    rule: str
    state: str = DONE


def _batch_name(session: Session, batch_id: int) -> str:
    name = session.scalar(select(Batch.name).where(Batch.id == batch_id))
    if name is None:
        raise KeyError(f"no batch {batch_id}")
    return name


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
            current_clause(),
        ),
    ]


def _selection(spec: dict[str, Any]) -> list[Any]:
    """The samples a bulk event's frozen selection names (undecided ones are taken)."""
    if spec["kind"] == ACCEPT_PASSED:
        conditions = _passed_selection(spec["batch_id"])
    elif spec["kind"] == REJECT_FAILURES:
        conditions = _failure_selection(spec["batch_id"], spec["verifier"], spec["reason"])
    elif spec["kind"] == SIMILAR:
        conditions = [Sample.id.in_(spec["sample_ids"])]
    else:
        raise ValueError(f"unknown bulk selection {spec['kind']!r}")
    return [*conditions, Sample.id <= spec["max_sample_id"]]


# --------------------------------------------------------------------------- previews


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


def rejectable_reasons(engine: Engine, batch_id: int, *, limit: int = 50) -> list[ReasonCount]:
    """(verifier, exact reason, undecided samples) of the batch's failed current verdicts,
    most common first: the choices of `bulk_reject_failures`."""
    return failure_reasons(engine, [batch_id], decisions=("undecided",), normalise=False, limit=limit)


# --------------------------------------------------------------------------- applying


def _apply_chunk(session: Session, event: BulkEvent) -> bool:
    """Decide the next chunk of an applying event's samples. False once none is left."""
    spec = dict(event.filter)
    ids = list(
        session.scalars(
            select(Sample.id)
            .where(*_selection(spec), Sample.decision.is_(None), Sample.id > spec["through"])
            .order_by(Sample.id)
            .limit(CHUNK)
            .with_for_update()
        )
    )
    if not ids:
        event.filter = {**spec, "state": DONE}
        return False
    decided = list(
        session.scalars(
            update(Sample)
            .where(Sample.id.in_(ids), Sample.decision.is_(None))
            .values(decision=event.action)
            .returning(Sample.id)
            .execution_options(synchronize_session=False)
        )
    )
    constants = _event_columns(event.reviewer, event.action, spec["reason_tags"], spec["note"], event.id)
    session.execute(
        insert(Decision).from_select(
            ["sample_id", *_EVENT_FIELDS], select(Sample.id, *constants).where(Sample.id.in_(decided))
        )
    )
    event.filter = {**spec, "through": ids[-1]}
    event.count = (event.count or 0) + len(decided)
    return True


def _undo_chunk(session: Session, event: BulkEvent) -> bool:
    """Reverse the next chunk of the undone event's decisions. False once none is left."""
    spec = dict(event.filter)
    undone_event = spec["undoes_bulk_event_id"]
    rows = session.execute(
        select(Decision.id, Decision.sample_id)
        .where(Decision.bulk_event_id == undone_event, Decision.id > spec["through"])
        .order_by(Decision.id)
        .limit(CHUNK)
    ).all()
    if not rows:
        event.filter = {**spec, "state": DONE}
        return False
    sample_ids = [sample_id for _, sample_id in rows]
    session.execute(select(Sample.id).where(Sample.id.in_(sample_ids)).with_for_update())
    later = aliased(Decision)
    still_latest = dict(
        session.execute(
            select(Decision.sample_id, Decision.id).where(
                Decision.id.in_([decision_id for decision_id, _ in rows]),
                ~exists().where(later.sample_id == Decision.sample_id, later.id > Decision.id),
            )
        ).all()
    )
    cleared = list(
        session.scalars(
            update(Sample)
            .where(Sample.id.in_(list(still_latest)), Sample.decision == spec["undone_action"])
            .values(decision=None)
            .returning(Sample.id)
            .execution_options(synchronize_session=False)
        )
    )
    constants = _event_columns(event.reviewer, CLEAR, (), f"undo of bulk event {undone_event}", event.id)
    session.execute(
        insert(Decision).from_select(
            ["sample_id", *_EVENT_FIELDS, "undoes_id"],
            select(Decision.sample_id, *constants, Decision.id).where(
                Decision.id.in_([still_latest[sample_id] for sample_id in cleared])
            ),
        )
    )
    event.filter = {**spec, "through": rows[-1][0]}
    event.count = (event.count or 0) + len(cleared)
    return True


def _run(engine: Engine, bulk_event_id: int) -> BulkResult:
    """Apply an event chunk by chunk until it is done (or stopped by an undo)."""
    while True:
        with session_scope(engine) as session:
            # The event row lock serialises two processes resuming the same event.
            event = session.get(BulkEvent, bulk_event_id, with_for_update=True)
            if event is None:
                raise KeyError(f"no bulk event {bulk_event_id}")
            state = (event.filter or {}).get("state", DONE)
            if state == APPLYING:
                step = _undo_chunk if event.action == UNDO else _apply_chunk
                if step(session, event):
                    continue
                state = DONE
            return BulkResult(event.id, event.action, event.count or 0, event.rule, state)


@writes(Action.BULK)
def resume_bulk(engine: Engine, actor: Actor, bulk_event_id: int) -> BulkResult:
    """Finish a bulk event a dead process left "applying" (a no-op for finished ones)."""
    return _run(engine, bulk_event_id)


def _start(session: Session, reviewer: str, action: str, rule: str, spec: dict[str, Any]) -> int:
    event = BulkEvent(
        reviewer=reviewer, action=action, rule=rule, count=0, filter={**spec, "state": APPLYING, "through": 0}
    )
    session.add(event)
    session.flush()
    return event.id


def _max_sample_id(session: Session, batch_id: int) -> int:
    return session.scalar(select(func.max(Sample.id)).where(Sample.batch_id == batch_id)) or 0


@writes(Action.BULK)
def bulk_accept_passed(
    engine: Engine,
    actor: Actor,
    batch_id: int,
    *,
    max_error: float = DEFAULT_MAX_ERROR,
    confidence: float = DEFAULT_CONFIDENCE,
) -> BulkResult:
    """Accept all undecided verifier-passed samples of a batch, once the spot-check
    supports "error rate ≤ max_error at `confidence`". Raises BoundNotMet otherwise.
    The event and its decisions are stored under `actor`'s name."""
    reviewer = actor.name
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
        spec = {
            "kind": ACCEPT_PASSED,
            "batch_id": batch_id,
            "passed": True,
            "decision": "undecided",
            "max_sample_id": _max_sample_id(session, batch_id),
            "max_error": max_error,
            "confidence": confidence,
            "reviewed": summary.reviewed,
            "failures": summary.failures,
            "upper_bound": summary.upper_bound,
            "reason_tags": [],
            "note": f"bulk: verifier-passed, spot-check upper bound {summary.upper_bound:.2%} ≤ {max_error:.1%}",
        }
        event_id = _start(session, reviewer, "accept", rule, spec)
    return _run(engine, event_id)


@writes(Action.BULK)
def bulk_reject_failures(
    engine: Engine,
    actor: Actor,
    batch_id: int,
    verifier: str,
    reason: str,
    *,
    reason_tags: Sequence[str] = (),
) -> BulkResult:
    """Reject all undecided samples of a batch that `verifier` failed with exactly `reason`."""
    reviewer = actor.name
    with session_scope(engine) as session:
        name = _batch_name(session, batch_id)
        rule = f"reject the samples of batch {name!r} that {verifier} failed with reason {reason!r}"
        spec = {
            "kind": REJECT_FAILURES,
            "batch_id": batch_id,
            "verifier": verifier,
            "reason": reason,
            "passed": False,
            "decision": "undecided",
            "max_sample_id": _max_sample_id(session, batch_id),
            "reason_tags": list(reason_tags),
            "note": f"bulk: {verifier}: {reason}",
        }
        event_id = _start(session, reviewer, "reject", rule, spec)
    return _run(engine, event_id)


def preview_apply_decision(engine: Engine, sample_ids: Sequence[int]) -> list[int]:
    """The undecided ones among `sample_ids` (what `bulk_apply_decision` would decide now)."""
    ids = sorted({int(sample_id) for sample_id in sample_ids})
    if not ids:
        return []
    with session_scope(engine, write=False) as session:
        return list(
            session.scalars(
                select(Sample.id).where(Sample.id.in_(ids), Sample.decision.is_(None)).order_by(Sample.id)
            )
        )


@writes(Action.BULK)
def bulk_apply_decision(
    engine: Engine,
    actor: Actor,
    sample_ids: Sequence[int],
    decision: str,
    *,
    reason: str = "",
    reason_tags: Sequence[str] = (),
    source_sample_id: int | None = None,
) -> BulkResult:
    """Apply `actor`'s decision to the chosen samples (the "similar samples" of
    `source_sample_id` on the review card) as one bulk event, undoable with `undo_bulk`.

    Like every bulk action it decides only the samples still undecided: a human's
    decision is never overridden. `reason` is the note stored with each decision."""
    if decision not in APPLICABLE:
        raise ValueError(f"decision must be one of {', '.join(APPLICABLE)}, got {decision!r}")
    ids = sorted({int(sample_id) for sample_id in sample_ids})
    if not ids:
        raise ValueError("choose at least one sample to apply the decision to")
    with session_scope(engine) as session:
        found = dict(session.execute(select(Sample.id, Sample.batch_id).where(Sample.id.in_(ids))).all())
        missing = [sample_id for sample_id in ids if sample_id not in found]
        if missing:
            raise KeyError(f"no sample {', '.join(map(str, missing))}")
        source_batch = None
        if source_sample_id is not None:
            source_batch = session.scalar(select(Sample.batch_id).where(Sample.id == source_sample_id))
        source = f" like sample {source_sample_id}" if source_sample_id is not None else ""
        rule = f"{decision} {len(ids)} chosen similar sample(s){source}" + (f": {reason}" if reason else "")
        spec = {
            "kind": SIMILAR,
            # The batch the event is listed under (the source sample's, else the first chosen one's).
            "batch_id": source_batch if source_batch is not None else found[ids[0]],
            "batch_ids": sorted(set(found.values())),
            "sample_ids": ids,
            "source_sample_id": source_sample_id,
            "decision": "undecided",
            "max_sample_id": ids[-1],
            "reason_tags": list(reason_tags),
            "note": reason or f"bulk: {decision}{source}",
        }
        event_id = _start(session, actor.name, decision, rule, spec)
    return _run(engine, event_id)


@writes(Action.BULK)
def undo_bulk(engine: Engine, actor: Actor, bulk_event_id: int) -> BulkResult:
    """Undo a bulk action: each of its decisions that is still its sample's latest
    event gets a reversing event (the sample becomes undecided again), under a new
    BulkEvent of action "undo". Samples decided again since are left alone. An
    event still applying is stopped first."""
    reviewer = actor.name
    with session_scope(engine) as session:
        original = session.get(BulkEvent, bulk_event_id, with_for_update=True)
        if original is None:
            raise KeyError(f"no bulk event {bulk_event_id}")
        if original.action == UNDO:
            raise ValueError("an undo cannot be undone; run the bulk action again")
        for other in session.scalars(select(BulkEvent).where(BulkEvent.action == UNDO)):
            if (other.filter or {}).get("undoes_bulk_event_id") == bulk_event_id:
                raise ValueError(f"bulk event {bulk_event_id} was already undone by bulk event {other.id}")
        if (original.filter or {}).get("state") == APPLYING:
            original.filter = {**original.filter, "state": ABANDONED}
        rule = f"undo of bulk event {bulk_event_id}: {original.rule}"
        event_id = _start(
            session,
            reviewer,
            UNDO,
            rule,
            {"kind": UNDO, "undoes_bulk_event_id": bulk_event_id, "undone_action": original.action},
        )
    return _run(engine, event_id)


@dataclass(frozen=True)
class BulkEventView:
    id: int
    reviewer: str
    action: str
    rule: str
    count: int
    created_at: Any
    undone_by: int | None
    #: "applying" (unfinished: resume it), "done" or "abandoned" (undone while applying).
    state: str


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
        BulkEventView(
            e.id,
            e.reviewer,
            e.action,
            e.rule,
            e.count,
            e.created_at,
            undone_by.get(e.id),
            (e.filter or {}).get("state", DONE),
        )
        for e in events
        if batch_id is None or batch_of(e) == batch_id
    ]
