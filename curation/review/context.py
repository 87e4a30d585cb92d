"""Everything the review card shows about one sample: the sample with its verdicts
and history (`curation.store.queries.get_sample`), its diversity marks with a preview of
the other sample each one points at, and its nearest neighbours
(`curation.diversity.neighbours.nearest_neighbours`, from cached embeddings).

On a blind batch the card holds what the acting user may see (`curation.review.blind`):
a reviewer who has not decided the sample gets no verdicts, outcome or others' decisions.

The neighbours are a separate call (`neighbour_previews`) so that the card can show
the sample and its marks even when the neighbour lookup fails; its errors propagate."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from curation.auth import Actor
from curation.diversity import neighbours as diversity_neighbours
from curation.review.blind import visible_sample
from curation.store.db import session_scope
from curation.store.models import Batch, Sample
from curation.store.queries import SampleDetail, get_sample, text_previews

PREVIEW_CHARS = 600
#: Neighbours shown on the card.
NEIGHBOURS = 5
_NO_PREVIEW = ("", "", "", "")


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
    #: Blind review: verdicts and others' decisions were left out for this actor.
    hidden: bool = False


def _previews(engine: Engine, sample_ids: list[int]) -> dict[int, tuple[str, str, str, str]]:
    """sample id -> (batch, origin, prompt, response), the texts cut to PREVIEW_CHARS."""
    if not sample_ids:
        return {}
    query = (
        select(Sample.id, Batch.name, Batch.origin, *text_previews(PREVIEW_CHARS))
        .join(Batch, Batch.id == Sample.batch_id)
        .where(Sample.id.in_(sample_ids))
    )
    with session_scope(engine, write=False) as session:
        return {sample_id: tuple(preview) for sample_id, *preview in session.execute(query)}


def neighbour_previews(engine: Engine, sample_id: int, k: int = NEIGHBOURS) -> list[Related]:
    """The sample's `k` nearest neighbours, most similar first, with previews; empty when
    it has no cached embedding. Errors of the lookup propagate (the page shows them)."""
    found = diversity_neighbours.nearest_neighbours(engine, sample_id, k=k)
    previews = _previews(engine, sorted({other for other, _ in found}))
    return [
        Related(other, *previews[other], kind="neighbour", score=score)
        for other, score in found
        if other in previews
    ]


def review_card(engine: Engine, sample_id: int, actor: Actor | None = None) -> ReviewCard:
    """The sample and its diversity marks, each with a preview of the other sample, as
    `actor` may see it (None: nobody signed in, the reviewer's view)."""
    sample, hidden = visible_sample(engine, actor, get_sample(engine, sample_id))
    previews = _previews(engine, sorted({m["other_sample_id"] for m in sample.marks if m["other_sample_id"]}))
    marks = [
        Related(
            mark["other_sample_id"] or 0,
            *previews.get(mark["other_sample_id"], _NO_PREVIEW),
            kind=mark["kind"],
            score=mark["score"],
            reason=mark["reason"],
            overridden_by=None if hidden else mark["overridden_by"],
        )
        for mark in sample.marks
    ]
    return ReviewCard(sample=sample, marks=marks, hidden=hidden)
