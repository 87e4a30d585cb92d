"""Everything the review card shows about one sample: the sample with its verdicts
and history (`curation.store.queries.get_sample`), its diversity marks with a preview of
the other sample each one points at, and its nearest neighbours when the diversity
package offers a per-sample neighbour lookup."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from curation.store.db import session_scope
from curation.store.models import Batch, Sample
from curation.store.queries import SampleDetail, get_sample, text_previews

PREVIEW_CHARS = 600
#: Names a per-sample neighbour lookup may have in curation.diversity.service:
#: f(engine, sample_id, k=...) -> rows with a sample id and a similarity.
NEIGHBOUR_FUNCTIONS = ("nearest_neighbours", "sample_neighbours", "neighbours_of")
NEIGHBOUR_MODULES = ("curation.diversity.neighbours", "curation.diversity.service")


@dataclass(frozen=True)
class Related:
    """Another sample a mark or a neighbour lookup points at, with a preview."""

    sample_id: int
    batch: str
    origin: str
    prompt: str
    response: str
    kind: str = ""
    score: float | None = None
    reason: str = ""
    overridden_by: str | None = None


@dataclass
class ReviewCard:
    sample: SampleDetail
    marks: list[Related] = field(default_factory=list)
    #: None when no neighbour lookup is available (the marks are all there is).
    neighbours: list[Related] | None = None


def _previews(engine: Engine, sample_ids: list[int]) -> dict[int, tuple[str, str, str, str]]:
    if not sample_ids:
        return {}
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(
                Sample.id,
                Batch.name,
                Batch.origin,
                *text_previews(PREVIEW_CHARS),
            )
            .join(Batch, Batch.id == Sample.batch_id)
            .where(Sample.id.in_(sample_ids))
        )
        return {row[0]: tuple(row[1:]) for row in rows}


def neighbour_lookup() -> Callable[..., Any] | None:
    """The diversity package's per-sample neighbour function, if it has one."""
    for module_name in NEIGHBOUR_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in NEIGHBOUR_FUNCTIONS:
            function = getattr(module, name, None)
            if callable(function):
                return function
    return None


def _neighbour_rows(engine: Engine, sample_id: int, k: int) -> list[tuple[int, float | None]] | None:
    lookup = neighbour_lookup()
    if lookup is None:
        return None
    try:
        found = lookup(engine, sample_id, k=k)
    except Exception:  # noqa: BLE001 - an optional extra: no embeddings yet, another signature
        return None
    rows = []
    for item in found or []:
        if isinstance(item, dict):
            other, score = item.get("sample_id", item.get("id")), item.get("score", item.get("similarity"))
        elif isinstance(item, tuple | list):
            other, score = item[0], item[1] if len(item) > 1 else None
        else:
            other, score = getattr(item, "sample_id", None), getattr(item, "score", getattr(item, "similarity", None))
        if other is not None and int(other) != sample_id:
            rows.append((int(other), None if score is None else float(score)))
    return rows


def review_card(engine: Engine, sample_id: int, *, neighbours: int = 5) -> ReviewCard:
    """The full context of one sample for the review card."""
    sample = get_sample(engine, sample_id)
    neighbour_rows = _neighbour_rows(engine, sample_id, neighbours) if neighbours else None
    others = [m["other_sample_id"] for m in sample.marks if m["other_sample_id"] is not None]
    others += [other for other, _ in neighbour_rows or []]
    previews = _previews(engine, sorted(set(others)))
    marks = []
    for mark in sample.marks:
        other = mark["other_sample_id"]
        batch, origin, prompt, response = previews.get(other, ("", "", "", "")) if other else ("", "", "", "")
        marks.append(
            Related(
                sample_id=other or 0,
                batch=batch,
                origin=origin,
                prompt=prompt,
                response=response,
                kind=mark["kind"],
                score=mark["score"],
                reason=mark["reason"],
                overridden_by=mark["overridden_by"],
            )
        )
    near = None
    if neighbour_rows is not None:
        near = [
            Related(other, *previews[other], kind="neighbour", score=score)
            for other, score in neighbour_rows
            if other in previews
        ]
    return ReviewCard(sample=sample, marks=marks, neighbours=near)
