"""Best-of-n: the candidates of one problem (same batch and item) side by side.

A generation run with ``n`` > 1 stores ``n`` samples per item, keyed by
``(batch_id, item_index, candidate_index)``. The verify step records on each
whether it passed (``Sample.passed``) and the judge its score. From these facts an
export keeps, per item:

- ``first``: the passing candidate with the lowest candidate index,
- ``all``: every passing candidate,
- ``best``: the passing candidate with the highest judge score (ties: the lowest index).

Preference pairs (`curation.export.preference`) are built from the same facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from sqlalchemy import Engine, and_, select
from sqlalchemy.orm import aliased

from curation.store.db import session_scope
from curation.store.models import Sample, Verdict
from curation.verification.versions import current_clause

CANDIDATE_RULES = ("first", "all", "best")
#: The verifier whose score ranks candidates under the `best` rule.
JUDGE = "judge"

RULE_LABELS = {
    "first": "the first passing candidate of each problem (lowest candidate index)",
    "all": "every passing candidate of each problem",
    "best": "the passing candidate with the highest judge score of each problem",
}


@dataclass(frozen=True)
class Candidate:
    sample_id: int
    batch_id: int
    item_index: int
    candidate_index: int
    passed: bool | None
    decision: str | None
    judge_score: float | None


def candidate_facts(
    engine: Engine, batch_ids: Iterable[int], families: list[str] | None = None
) -> list[Candidate]:
    """Every candidate of the batches, ordered by (batch, item, candidate index)."""
    judge = aliased(Verdict)
    query = (
        select(
            Sample.id,
            Sample.batch_id,
            Sample.item_index,
            Sample.candidate_index,
            Sample.passed,
            Sample.decision,
            judge.score,
        )
        .outerjoin(judge, and_(judge.sample_id == Sample.id, judge.verifier == JUDGE, current_clause(judge)))
        .where(Sample.batch_id.in_(list(batch_ids)))
        .order_by(Sample.batch_id, Sample.item_index, Sample.candidate_index, Sample.id)
    )
    if families is not None:
        query = query.where(Sample.family.in_(families))
    with session_scope(engine, write=False) as session:
        return [Candidate(*row) for row in session.execute(query)]


def by_problem(candidates: Iterable[Candidate]) -> Iterator[list[Candidate]]:
    """The candidates grouped by problem (input ordered as `candidate_facts` returns it)."""
    for _, group in groupby(candidates, key=lambda c: (c.batch_id, c.item_index)):
        yield list(group)


def chosen_candidates(candidates: Iterable[Candidate], rule: str) -> set[int]:
    """The sample ids that `rule` keeps among `candidates` (see the module docstring)."""
    if rule not in CANDIDATE_RULES:
        raise ValueError(f"unknown candidate rule {rule!r} (known: {', '.join(CANDIDATE_RULES)})")
    kept: set[int] = set()
    for group in by_problem(candidates):
        passing = [c for c in group if c.passed is True]
        if not passing:
            continue
        if rule == "all":
            kept.update(c.sample_id for c in passing)
        elif rule == "first":
            kept.add(passing[0].sample_id)
        else:
            scored = [c for c in passing if c.judge_score is not None]
            if scored:
                kept.add(max(scored, key=lambda c: (c.judge_score, -c.candidate_index)).sample_id)
    return kept


def rule_record(rule: str | None) -> dict[str, Any] | None:
    """How the manifest names the rule."""
    if rule is None:
        return None
    return {"rule": rule, "meaning": RULE_LABELS[rule]}
