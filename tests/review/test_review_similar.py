"""Find similar on SQLite and PostgreSQL: neighbours by cached embeddings across batches
and reference sets, with their decisions; the bulk "apply my decision to these N" as
one undoable event, refused to roles without bulk actions."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select, update

from curation.auth import Actor, PermissionDenied, Role
from curation.diversity.embed import DEFAULT_MODEL, cache_key, encode_vectors
from curation.review.bulk import (
    SIMILAR,
    bulk_apply_decision,
    list_bulk_events,
    preview_apply_decision,
    undo_bulk,
)
from curation.review.decisions import record_decision
from curation.review.settings import set_review_settings
from curation.review.similar import NotEmbedded, clear_cache, reviewer_decision, similar_samples
from curation.store import session_scope
from curation.store.models import Batch, BulkEvent, Decision, Embedding, Sample
from tests.helpers import add_batch, real_rows, synthetic_rows

ADMIN = Actor("ada", Role.ADMIN)
REVIEWER = Actor("bob", Role.REVIEWER)
DIM = 8


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=DIM)
    return v / np.linalg.norm(v)


def embed(engine, vectors: dict[int, np.ndarray], model: str = DEFAULT_MODEL) -> None:
    """Cache `vectors` (sample id -> vector) under `model`, keyed by the samples' content hashes."""
    with session_scope(engine) as session:
        hashes = dict(
            session.execute(select(Sample.id, Sample.content_hash).where(Sample.id.in_(list(vectors)))).all()
        )
        blobs = encode_vectors(np.stack(list(vectors.values())), dtype="float32")
        for (sample_id, _), blob in zip(vectors.items(), blobs, strict=True):
            session.add(
                Embedding(model=cache_key(model), content_hash=hashes[sample_id], dim=DIM, vector=blob)
            )


@pytest.fixture
def planted(engine):
    """Batch "a" (undecided), batch "b" (accepted by ada) and reference set "ref", all
    embedded. Sample a[0] has a planted near-duplicate in b (b[3], cosine ~0.999), a
    close reference (ref[2], ~0.99) and a near one in its own batch (a[5], ~0.95);
    the rest point elsewhere at random."""
    clear_cache()
    _, a = add_batch(engine, "a", synthetic_rows(8, tag="a", decision=None))
    _, b = add_batch(engine, "b", synthetic_rows(6, tag="b", decision="reject"))
    _, ref = add_batch(engine, "ref", real_rows(5), origin="real")
    rng = np.random.default_rng(7)
    vectors = {sample_id: unit(rng) for sample_id in a + b + ref}
    query = vectors[a[0]]
    off = unit(rng)
    off -= off @ query * query
    off /= np.linalg.norm(off)

    def near(cosine: float) -> np.ndarray:
        return cosine * query + np.sqrt(1 - cosine**2) * off

    vectors[b[3]] = near(0.999)
    vectors[ref[2]] = near(0.99)
    vectors[a[5]] = near(0.95)
    embed(engine, vectors)
    return a, b, ref


def test_the_planted_near_duplicates_come_first_across_batches_and_references(engine, planted):
    a, b, ref = planted
    found = similar_samples(engine, a[0], k=5)
    assert [s.sample_id for s in found[:3]] == [b[3], ref[2], a[5]]
    assert a[0] not in [s.sample_id for s in found]
    assert len(found) == 5
    first, second, third = found[:3]
    assert (first.batch, first.decision, first.decided_by, first.is_reference) == (
        "b",
        "reject",
        "ada",
        False,
    )
    assert (second.batch, second.origin, second.decision, second.is_reference) == ("ref", "real", None, True)
    assert (third.batch, third.decision) == ("a", None)
    assert first.similarity == pytest.approx(0.999, abs=1e-4)
    assert second.similarity == pytest.approx(0.99, abs=1e-4)
    assert [s.similarity for s in found] == sorted((s.similarity for s in found), reverse=True)
    assert "[b] Question 3" in first.prompt


def test_decisions_are_read_fresh_while_the_pool_is_cached(engine, planted):
    a, b, _ = planted
    assert similar_samples(engine, a[0], k=3)[2].decision is None
    record_decision(engine, Actor("cy", Role.REVIEWER), a[5], "accept")
    third = similar_samples(engine, a[0], k=3)[2]
    assert (third.sample_id, third.decision, third.decided_by) == (a[5], "accept", "cy")


def test_a_blind_batchs_decisions_are_hidden_from_a_reviewer_who_has_not_decided(engine, planted):
    a, b, _ = planted
    batch_b = engine_batch_id(engine, "b")
    set_review_settings(engine, ADMIN, batch_b, blind=True)
    as_reviewer = similar_samples(engine, a[0], k=3, actor=REVIEWER)[0]
    assert (as_reviewer.sample_id, as_reviewer.decision, as_reviewer.decided_by) == (b[3], None, None)
    as_admin = similar_samples(engine, a[0], k=3, actor=ADMIN)[0]
    assert (as_admin.decision, as_admin.decided_by) == ("reject", "ada")
    record_decision(engine, REVIEWER, b[3], "accept")
    decided = similar_samples(engine, a[0], k=3, actor=REVIEWER)[0]
    assert (decided.decision, decided.decided_by) == ("accept", "bob")


def engine_batch_id(engine, name: str) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(Batch.id).where(Batch.name == name))


def test_hidden_batches_are_left_out(engine, planted):
    a, b, _ = planted
    with session_scope(engine) as session:
        session.execute(update(Batch).where(Batch.name == "b").values(status="discarding"))
    assert b[3] not in [s.sample_id for s in similar_samples(engine, a[0], k=20)]


def test_a_sample_without_a_cached_embedding_says_how_to_embed_it(engine, planted):
    a, _, _ = planted
    _, fresh = add_batch(engine, "new one", synthetic_rows(2, tag="n", decision=None))
    with pytest.raises(NotEmbedded, match="python -m curation embed --batch 'new one'"):
        similar_samples(engine, fresh[0])
    with pytest.raises(NotEmbedded, match="--model other-model"):
        similar_samples(engine, a[0], model="other-model")
    with pytest.raises(KeyError):
        similar_samples(engine, 10_000_000)


def test_apply_my_decision_is_one_bulk_event_and_undoes_as_one(engine, planted):
    a, b, ref = planted
    record_decision(engine, ADMIN, a[0], "reject")
    assert reviewer_decision(engine, a[0], "ada") == "reject"
    assert reviewer_decision(engine, a[0], "bob") is None
    found = [s.sample_id for s in similar_samples(engine, a[0], k=3)]
    assert preview_apply_decision(engine, found) == sorted([ref[2], a[5]])  # b[3] is decided
    result = bulk_apply_decision(
        engine, ADMIN, found, "reject", reason="like sample a0", source_sample_id=a[0]
    )
    assert (result.action, result.count, result.state) == ("reject", 2, "done")
    with session_scope(engine, write=False) as session:
        assert session.scalar(select(func.count(BulkEvent.id))) == 1
        event = session.get(BulkEvent, result.bulk_event_id)
        assert event.filter["kind"] == SIMILAR and event.reviewer == "ada"
        rows = session.execute(
            select(Decision.sample_id, Decision.note).where(Decision.bulk_event_id == result.bulk_event_id)
        ).all()
        assert sorted(rows) == sorted([(ref[2], "like sample a0"), (a[5], "like sample a0")])
        decisions = dict(
            session.execute(select(Sample.id, Sample.decision).where(Sample.id.in_(found))).all()
        )
    assert decisions == {b[3]: "reject", ref[2]: "reject", a[5]: "reject"}
    listed = list_bulk_events(engine, batch_id=None)
    assert [e.id for e in listed] == [result.bulk_event_id]

    undone = undo_bulk(engine, ADMIN, result.bulk_event_id)
    assert undone.count == 2
    with session_scope(engine, write=False) as session:
        decisions = dict(
            session.execute(select(Sample.id, Sample.decision).where(Sample.id.in_(found))).all()
        )
    assert decisions == {b[3]: "reject", ref[2]: None, a[5]: None}  # the human's reject stays
    assert [e.undone_by for e in list_bulk_events(engine) if e.id == result.bulk_event_id] == [
        undone.bulk_event_id
    ]


def test_the_bulk_event_is_listed_under_the_source_samples_batch(engine, planted):
    a, _, ref = planted
    result = bulk_apply_decision(engine, ADMIN, [ref[2]], "accept", source_sample_id=a[0])
    with session_scope(engine, write=False) as session:
        batch_a = session.scalar(select(Sample.batch_id).where(Sample.id == a[0]))
    assert [e.id for e in list_bulk_events(engine, batch_a)] == [result.bulk_event_id]


@pytest.mark.parametrize(
    ("actor", "ids", "decision", "error"),
    [
        (REVIEWER, None, "accept", PermissionDenied),
        (ADMIN, None, "skip", ValueError),
        (ADMIN, [], "accept", ValueError),
        (ADMIN, [10_000_000], "accept", KeyError),
    ],
)
def test_apply_is_refused_before_anything_changes(engine, planted, actor, ids, decision, error):
    a, _, _ = planted
    with pytest.raises(error):
        bulk_apply_decision(engine, actor, [a[1]] if ids is None else ids, decision)
    with session_scope(engine, write=False) as session:
        assert session.scalar(select(func.count(BulkEvent.id))) == 0
        assert session.scalar(select(Sample.decision).where(Sample.id == a[1])) is None
