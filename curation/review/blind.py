"""Blind review: the one place that decides what an acting user may see of a batch.

On a blind batch (`curation.review.settings`), a user who is not an admin sees no
verifier verdicts (judge scores are verdicts too), no verifier outcome, no other
reviewer's decisions and nothing derived from them (queue orders and counts, filters,
per-batch counts) until they have decided the sample themselves. Admins see everything.
An unknown user (None: nobody signed in) gets the reviewer's view.

The pages ask here and never decide for themselves; the functions the pages call
(`review_card`, the queues, the Samples filter and rows) take the actor and apply it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import Engine, select

from curation.auth import Actor
from curation.data import SampleDetail, SampleFilter, SampleRow
from curation.review.decisions import decided_by
from curation.review.queues import BLIND_QUEUE_KINDS, Queue, available_queues
from curation.review.settings import blind_batch_ids, review_settings
from curation.store.db import session_scope
from curation.store.models import Sample

#: Shown wherever something is left out for a reviewer on a blind batch.
NOTICE = "blind batch: verdicts hidden until you decide"


def sees_hidden(actor: Actor | None) -> bool:
    """Whether `actor` sees blind-review fields before deciding (admins only)."""
    return actor is not None and actor.sees_hidden


def _name(actor: Actor | None) -> str:
    return actor.name if actor is not None else ""


def hides(engine: Engine, actor: Actor | None, batch_id: int) -> bool:
    """Whether the batch hides verdicts and others' decisions from `actor` (until decided)."""
    return not sees_hidden(actor) and review_settings(engine, batch_id).blind


def hidden_batch_ids(engine: Engine, actor: Actor | None) -> frozenset[int]:
    """The batches that hide verdicts from `actor`: the blind ones, none for an admin."""
    return frozenset() if sees_hidden(actor) else blind_batch_ids(engine)


def has_decided(engine: Engine, actor: Actor | None, sample_id: int) -> bool:
    """Whether `actor` has a live decision on the sample."""
    name = _name(actor)
    if not name:
        return False
    with session_scope(engine, write=False) as session:
        return bool(session.scalar(select(decided_by(name, Sample.id)).where(Sample.id == sample_id)))


def hides_sample(engine: Engine, actor: Actor | None, batch_id: int, sample_id: int) -> bool:
    """Whether the sample's verdicts and others' decisions are hidden from `actor` now."""
    return hides(engine, actor, batch_id) and not has_decided(engine, actor, sample_id)


def redact_sample(sample: SampleDetail, actor: Actor | None) -> SampleDetail:
    """The sample without its verdicts, outcome, current decision and other reviewers'
    events (the actor's own events stay)."""
    name = _name(actor)
    return replace(
        sample,
        verdicts=[],
        passed=None,
        decision=None,
        history=[event for event in sample.history if name and event["reviewer"] == name],
    )


def visible_sample(engine: Engine, actor: Actor | None, sample: SampleDetail) -> tuple[SampleDetail, bool]:
    """(`sample` as `actor` may see it, whether anything was hidden)."""
    if hides_sample(engine, actor, sample.batch_id, sample.id):
        return redact_sample(sample, actor), True
    return sample, False


# --------------------------------------------------------------------------- queues


def queue_kinds(engine: Engine, actor: Actor | None, batch_id: int) -> list[str]:
    """The queues `actor` is offered on the batch: on a blind batch, only those whose
    order and count depend on nothing hidden."""
    return available_queues(engine, batch_id, blind=hides(engine, actor, batch_id))


def visible_queue(engine: Engine, actor: Actor | None, queue: Queue) -> Queue:
    """`queue` as `actor` may pull from it: on a blind batch a queue ordered by verdicts
    falls back to all undecided samples in id order, counted per reviewer."""
    if queue.blind or not hides(engine, actor, queue.batch_id):
        return queue
    if queue.kind not in BLIND_QUEUE_KINDS:
        return Queue("undecided", queue.batch_id, blind=True)
    return replace(queue, verifier=None, blind=True)


# --------------------------------------------------------------------------- Samples page


def visible_filter(engine: Engine, actor: Actor | None, filters: SampleFilter) -> tuple[SampleFilter, bool]:
    """(`filters` as `actor` may apply them, whether blind batches were left out): a
    filter on the verifier outcome or the decision never matches samples of a batch
    that hides them, so neither the rows nor the count tell them apart."""
    hidden = hidden_batch_ids(engine, actor)
    if not hidden or not (filters.passed or filters.decisions):
        return filters, False
    return replace(filters, exclude_batch_ids=sorted({*filters.exclude_batch_ids, *hidden})), True


def hidden_rows(engine: Engine, actor: Actor | None, sample_ids: Sequence[int]) -> frozenset[int]:
    """Those of `sample_ids` whose verifier outcome and decision `actor` may not see."""
    hidden = hidden_batch_ids(engine, actor)
    if not hidden or not sample_ids:
        return frozenset()
    query = select(Sample.id).where(Sample.id.in_(list(sample_ids)), Sample.batch_id.in_(sorted(hidden)))
    name = _name(actor)
    if name:
        query = query.where(~decided_by(name, Sample.id))
    with session_scope(engine, write=False) as session:
        return frozenset(session.scalars(query))


def redact_rows(
    engine: Engine, actor: Actor | None, rows: Sequence[SampleRow]
) -> tuple[list[SampleRow], frozenset[int]]:
    """The browse rows with outcome and decision blanked where hidden, and those ids."""
    hidden = hidden_rows(engine, actor, [row.id for row in rows])
    return [replace(row, passed=None, decision=None) if row.id in hidden else row for row in rows], hidden
