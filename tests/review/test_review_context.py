"""The review card's context: marks with previews, and nearest neighbours straight from
`curation.diversity.neighbours`, whose failures surface instead of reading as "none"."""

from __future__ import annotations

import pytest

from curation.diversity import neighbours as diversity_neighbours
from curation.review.context import PREVIEW_CHARS, neighbour_previews, review_card
from curation.store import session_scope
from curation.store.models import Mark
from tests.helpers import add_batch


@pytest.fixture
def samples(sqlite_engine):
    _, ids = add_batch(sqlite_engine, "card", [{"prompt": f"prompt {i} " + "x" * 900} for i in range(3)])
    return sqlite_engine, ids


def broken_lookup(engine, sample_id, k=5):
    raise RuntimeError("the embedding cache is corrupt")


def test_a_failing_neighbour_lookup_raises_instead_of_showing_none(samples, monkeypatch):
    engine, ids = samples
    monkeypatch.setattr(diversity_neighbours, "nearest_neighbours", broken_lookup)
    with pytest.raises(RuntimeError, match="embedding cache is corrupt"):
        neighbour_previews(engine, ids[0])
    assert review_card(engine, ids[0]).sample.id == ids[0], "the rest of the card does not depend on it"


def test_neighbours_come_with_previews_most_similar_first(samples, monkeypatch):
    engine, ids = samples
    monkeypatch.setattr(
        diversity_neighbours,
        "nearest_neighbours",
        lambda engine, sample_id, k=5: [(ids[2], 0.9), (ids[1], 0.5)],
    )
    found = neighbour_previews(engine, ids[0])
    assert [(n.sample_id, n.score, n.batch, n.kind) for n in found] == [
        (ids[2], 0.9, "card", "neighbour"),
        (ids[1], 0.5, "card", "neighbour"),
    ]
    assert found[0].prompt.startswith("prompt 2") and len(found[0].prompt) == PREVIEW_CHARS


def test_a_sample_without_cached_embeddings_has_no_neighbours(samples):
    engine, ids = samples
    assert neighbour_previews(engine, ids[0]) == []


def test_marks_carry_a_preview_of_the_other_sample(samples):
    engine, ids = samples
    with session_scope(engine) as session:
        session.add(
            Mark(
                sample_id=ids[0], kind="near_duplicate", other_sample_id=ids[1], score=0.93, reason="MinHash"
            )
        )
        session.add(
            Mark(sample_id=ids[0], kind="collapse", other_sample_id=None, score=None, reason="cluster")
        )
    marks = review_card(engine, ids[0]).marks
    assert [(m.kind, m.sample_id, m.batch, m.reason) for m in marks] == [
        ("near_duplicate", ids[1], "card", "MinHash"),
        ("collapse", 0, "", "cluster"),
    ]
    assert marks[0].prompt.startswith("prompt 1")
