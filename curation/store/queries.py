"""Read-side queries over batches and samples: the browse table, one sample's full
context, batch summaries. Only batches whose status is visible are ever shown."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Engine, Select, func, or_, select

from curation.data import BatchSummary, SampleDetail, SampleFilter, SampleRow
from curation.store.db import session_scope
from curation.store.models import Batch, Decision, Mark, Sample, Verdict
from curation.verification.versions import current_clause

#: Batches in these states are invisible (being written, or being discarded).
HIDDEN_STATUSES = ("importing", "discarding")
PAGE_SIZE = 50


def list_batches(engine: Engine, origins: tuple[str, ...] | None = None) -> list[BatchSummary]:
    """Every visible batch with its counts, newest first."""
    decision_counts = (
        select(
            Sample.batch_id,
            func.count().label("n"),
            func.count().filter(Sample.decision == "accept").label("accepted"),
            func.count().filter(Sample.decision == "reject").label("rejected"),
            func.count().filter(Sample.decision == "skip").label("skipped"),
            func.count().filter(Sample.passed.is_(True)).label("passed"),
            func.count().filter(Sample.passed.is_(False)).label("failed"),
        )
        .group_by(Sample.batch_id)
        .subquery()
    )
    query = (
        select(Batch, decision_counts)
        .outerjoin(decision_counts, decision_counts.c.batch_id == Batch.id)
        .where(Batch.status.not_in(HIDDEN_STATUSES))
        .order_by(Batch.id.desc())
    )
    if origins:
        query = query.where(Batch.origin.in_(origins))
    with session_scope(engine, write=False) as session:
        return [
            BatchSummary(
                id=batch.id,
                name=batch.name,
                origin=batch.origin,
                family=batch.family,
                source=batch.source,
                status=batch.status,
                created_at=batch.created_at,
                samples=row.n or 0,
                accepted=row.accepted or 0,
                rejected=row.rejected or 0,
                skipped=row.skipped or 0,
                passed=row.passed or 0,
                failed=row.failed or 0,
                generation=batch.generation,
                generation_config=dict(batch.generation_config or {}),
            )
            for row in session.execute(query)
            for batch in [row[0]]
        ]


def batch_id_by_name(engine: Engine, name: str) -> int:
    with session_scope(engine, write=False) as session:
        batch_id = session.scalar(
            select(Batch.id).where(Batch.name == name, Batch.status.not_in(HIDDEN_STATUSES))
        )
    if batch_id is None:
        raise KeyError(f"no batch named {name!r}")
    return batch_id


def decision_clause(decisions: Sequence[str]) -> ColumnElement[bool]:
    """Samples whose current decision is one of `decisions` ("undecided" = none yet)."""
    named = [d for d in decisions if d != "undecided"]
    clauses = [Sample.decision.in_(named)] if named else []
    if "undecided" in decisions:
        clauses.append(Sample.decision.is_(None))
    return or_(*clauses)


def passed_clause(values: Sequence[bool | None]) -> ColumnElement[bool]:
    """Samples whose overall verifier outcome is one of `values` (None = not judged)."""
    return or_(*(Sample.passed.is_(value) for value in values))


def where_visible(
    query: Select,
    *,
    batch_ids: Sequence[int] = (),
    exclude_batch_ids: Sequence[int] = (),
    origins: Sequence[str] = (),
    families: Sequence[str] = (),
    decisions: Sequence[str] = (),
    passed: Sequence[bool | None] = (),
) -> Select:
    """`query` over samples of visible batches, narrowed by each non-empty criterion
    (the browse filter and the diversity selection share it)."""
    query = query.join(Batch, Batch.id == Sample.batch_id).where(Batch.status.not_in(HIDDEN_STATUSES))
    if batch_ids:
        query = query.where(Sample.batch_id.in_(batch_ids))
    if exclude_batch_ids:
        query = query.where(Sample.batch_id.not_in(exclude_batch_ids))
    if origins:
        query = query.where(Batch.origin.in_(origins))
    if families:
        query = query.where(Sample.family.in_(families))
    if decisions:
        query = query.where(decision_clause(decisions))
    if passed:
        query = query.where(passed_clause(passed))
    return query


def _apply_filter(query: Select, filters: SampleFilter) -> Select:
    query = where_visible(
        query,
        batch_ids=filters.batch_ids,
        exclude_batch_ids=filters.exclude_batch_ids,
        origins=filters.origins,
        families=filters.families,
        decisions=filters.decisions,
        passed=filters.passed,
    )
    if filters.search.strip():
        pattern = f"%{_escape_like(filters.search.strip())}%"
        query = query.where(
            or_(Sample.prompt.ilike(pattern, escape="\\"), Sample.response.ilike(pattern, escape="\\"))
        )
    return query


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def text_previews(chars: int) -> tuple[ColumnElement[str], ColumnElement[str]]:
    """The first `chars` characters of the prompt and the response, cut by the database
    (a million long samples never travel whole to show a table)."""
    return func.substr(Sample.prompt, 1, chars), func.substr(Sample.response, 1, chars)


def query_samples(
    engine: Engine,
    filters: SampleFilter,
    *,
    offset: int = 0,
    limit: int = PAGE_SIZE,
    preview_chars: int = 240,
) -> tuple[list[SampleRow], int]:
    """One page of samples matching `filters`, in id order, and the total count."""
    rows_query = (
        _apply_filter(
            select(
                Sample.id,
                Batch.name,
                Sample.family,
                *text_previews(preview_chars),
                Sample.passed,
                Sample.decision,
                Sample.external_id,
            ),
            filters,
        )
        .order_by(Sample.id)
        .offset(offset)
        .limit(limit)
    )
    count_query = _apply_filter(select(func.count(Sample.id)), filters)
    with session_scope(engine, write=False) as session:
        rows = [SampleRow(*row) for row in session.execute(rows_query)]
        total = session.scalar(count_query) or 0
    return rows, total


def count_samples(engine: Engine, filters: SampleFilter) -> int:
    with session_scope(engine, write=False) as session:
        return session.scalar(_apply_filter(select(func.count(Sample.id)), filters)) or 0


def get_sample(engine: Engine, sample_id: int) -> SampleDetail:
    """A sample with its current verdicts (`curation.verification.versions`), review
    history (oldest first) and diversity marks."""
    with session_scope(engine, write=False) as session:
        sample = session.get(Sample, sample_id)
        if sample is None:
            raise KeyError(f"no sample {sample_id}")
        batch = session.get(Batch, sample.batch_id)
        verdicts = [
            {
                "verifier": v.verifier,
                "version": v.version,
                "passed": v.passed,
                "score": v.score,
                "reason": v.reason,
                "details": v.details,
                "duration_ms": v.duration_ms,
                "created_at": v.created_at,
            }
            for v in session.scalars(
                select(Verdict)
                .where(Verdict.sample_id == sample_id, current_clause())
                .order_by(Verdict.verifier, Verdict.id)
            )
        ]
        history = [
            {
                "id": d.id,
                "reviewer": d.reviewer,
                "action": d.action,
                "reason_tags": list(d.reason_tags or []),
                "note": d.note,
                "bulk_event_id": d.bulk_event_id,
                "undoes_id": d.undoes_id,
                "created_at": d.created_at,
            }
            for d in session.scalars(
                select(Decision).where(Decision.sample_id == sample_id).order_by(Decision.id)
            )
        ]
        marks = [
            {
                "id": m.id,
                "kind": m.kind,
                "other_sample_id": m.other_sample_id,
                "score": m.score,
                "reason": m.reason,
                "overridden_by": m.overridden_by,
            }
            for m in session.scalars(select(Mark).where(Mark.sample_id == sample_id).order_by(Mark.id))
        ]
        return SampleDetail(
            id=sample.id,
            batch=batch.name,
            batch_id=batch.id,
            origin=batch.origin,
            family=sample.family,
            prompt=sample.prompt,
            response=sample.response,
            reference=dict(sample.reference or {}),
            metadata=dict(sample.meta or {}),
            content_hash=sample.content_hash,
            external_id=sample.external_id,
            item_index=sample.item_index,
            candidate_index=sample.candidate_index,
            passed=sample.passed,
            decision=sample.decision,
            verdicts=verdicts,
            history=history,
            marks=marks,
        )
