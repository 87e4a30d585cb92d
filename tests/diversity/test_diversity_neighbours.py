"""Nearest neighbours for the review card, from cached vectors of the batch and the reference sets."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from curation.diversity import neighbours
from curation.diversity.embed import DEFAULT_MODEL, cache_key, encode_vectors
from curation.diversity.neighbours import nearest_neighbours
from curation.io.importer import import_file
from curation.review.context import neighbour_previews
from curation.store import session_scope
from curation.store.models import Embedding, Sample
from tests.helpers import ADMIN, sample_records, write_jsonl


def test_neighbours_come_from_the_batch_and_the_reference_set_most_similar_first(engine, tmp_path):
    import_file(engine, ADMIN, write_jsonl(tmp_path / "s.jsonl", sample_records(4)), "synthetic")
    real = [{**r, "prompt": "real " + r["prompt"]} for r in sample_records(2)]
    import_file(engine, ADMIN, write_jsonl(tmp_path / "r.jsonl", real), "real", origin="real")
    # Unit vectors at known angles: the synthetic samples at 0, 10, 20, 30 degrees, the real ones at 12 and 200.
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(Sample.id, Sample.content_hash, Sample.batch_id).order_by(Sample.id)
        ).all()
    degrees = [0, 10, 20, 30, 12, 200]
    vectors = np.array([[np.cos(np.radians(d)), np.sin(np.radians(d))] for d in degrees], dtype=np.float32)
    with session_scope(engine) as session:
        for (_sample_id, content_hash, _batch), blob in zip(
            rows, encode_vectors(vectors, "float32"), strict=True
        ):
            session.add(
                Embedding(model=cache_key(DEFAULT_MODEL), content_hash=content_hash, dim=2, vector=blob)
            )
    ids = [row[0] for row in rows]
    found = nearest_neighbours(engine, ids[1], k=3)
    assert [sample_id for sample_id, _ in found] == [ids[4], ids[0], ids[2]]
    assert abs(found[0][1] - np.cos(np.radians(2))) < 1e-6
    assert [related.sample_id for related in neighbour_previews(engine, ids[1], k=3)] == [
        ids[4],
        ids[0],
        ids[2],
    ]


def test_a_sample_without_embeddings_has_no_neighbours(sqlite_engine, records_file):
    import_file(sqlite_engine, ADMIN, records_file(3), "b")
    with session_scope(sqlite_engine, write=False) as session:
        sample_id = session.scalar(select(Sample.id))
    assert nearest_neighbours(sqlite_engine, sample_id) == []


def test_the_neighbour_pools_stay_within_their_budget_dropping_the_least_recently_used(
    sqlite_engine, tmp_path, monkeypatch
):
    """One pool per batch used to be kept for the life of the server (up to ~77 MB each)."""
    for name in ("a", "b", "c"):
        import_file(sqlite_engine, ADMIN, write_jsonl(tmp_path / f"{name}.jsonl", sample_records(5)), name)
    with session_scope(sqlite_engine) as session:
        rows = session.execute(select(Sample.id, Sample.content_hash).order_by(Sample.id)).all()
        for _sample_id, content_hash in rows:
            session.merge(
                Embedding(
                    model=cache_key(DEFAULT_MODEL),
                    content_hash=content_hash,
                    dim=2,
                    vector=encode_vectors(np.array([[1.0, 0.0]]), "float32")[0],
                )
            )
    first_of_each_batch = [rows[0][0], rows[5][0], rows[10][0]]
    monkeypatch.setattr(neighbours, "_pools", neighbours.ByteBudgetLRU(10**9, neighbours._pool_bytes))
    nearest_neighbours(sqlite_engine, first_of_each_batch[0])
    one_pool = neighbours._pools.total_bytes
    assert one_pool > 0
    monkeypatch.setattr(neighbours._pools, "budget_bytes", 2 * one_pool)
    for sample_id in first_of_each_batch[1:]:
        assert len(nearest_neighbours(sqlite_engine, sample_id)) == 4
    assert len(neighbours._pools) == 2
    assert neighbours._pools.total_bytes <= 2 * one_pool


def test_a_batch_too_big_to_search_per_card_is_not_loaded(sqlite_engine, records_file, monkeypatch):
    """The pool's size is counted before any sample is read: at 1M samples, reading them all
    to find the pool too big made the review page take 15 s to open."""
    import_file(sqlite_engine, ADMIN, records_file(5), "big")
    with session_scope(sqlite_engine, write=False) as session:
        sample_id = session.scalar(select(Sample.id))
    monkeypatch.setattr(neighbours, "MAX_CANDIDATES", 4)
    monkeypatch.setattr(neighbours, "_pools", neighbours.ByteBudgetLRU(10**9, neighbours._pool_bytes))

    def refuse(*_args, **_kwargs):
        raise AssertionError("samples were loaded for a pool that is too big")

    monkeypatch.setattr(neighbours, "load_samples", refuse)
    assert nearest_neighbours(sqlite_engine, sample_id) == []
