"""Find similar: the nearest neighbours of one sample across every batch and reference
set, by cosine similarity of the cached embeddings, each with its current decision.

Nothing is embedded here: only vectors already in the embedding cache (keyed by model
and content hash, `curation.diversity.embed.cache_key`) take part. A sample without a
cached vector raises `NotEmbedded`, whose message names the command that embeds it.

The candidate pool (every embedded sample of a visible batch, one unit-vector matrix) is
kept per (store, model) in a byte-bounded LRU for a minute, so a review card's lookup
is one matrix-vector product; the decisions and batch names of the k found are read
fresh from the store, so they are never stale.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy import Engine, and_, func, select

from curation.auth import Actor
from curation.diversity.embed import DEFAULT_MODEL, cache_key, decode_vectors
from curation.diversity.lru import ByteBudgetLRU, budget_from_env
from curation.review.blind import hidden_rows
from curation.review.decisions import live_stacks
from curation.store.db import session_scope
from curation.store.models import Batch, Decision, Embedding, Sample
from curation.store.queries import HIDDEN_STATUSES, text_previews

#: Candidate pools are rebuilt after this long, so newly embedded samples show.
POOL_TTL_SECONDS = 60.0
PREVIEW_CHARS = 300
#: Batch origin of the reference sets (human data).
REFERENCE_ORIGIN = "real"


class NotEmbedded(LookupError):
    """The sample has no cached embedding under the model: nothing to compare it with."""


@dataclass(frozen=True)
class SimilarSample:
    """One neighbour: where it lives, how similar it is, and how it was decided."""

    sample_id: int
    batch_id: int
    #: The batch (or reference set) name.
    batch: str
    #: "synthetic", "real" (a reference set) or "eval".
    origin: str
    similarity: float
    #: The current decision ("accept", "reject", "skip") or None when undecided.
    decision: str | None
    #: Who wrote the sample's latest decision event (None when it has none).
    decided_by: str | None
    prompt: str
    response: str

    @property
    def is_reference(self) -> bool:
        return self.origin == REFERENCE_ORIGIN


@dataclass(frozen=True)
class Pool:
    """Every embedded sample of the visible batches under one model."""

    ids: np.ndarray
    matrix: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.matrix.nbytes


_pools: ByteBudgetLRU[str, Pool] = ByteBudgetLRU(
    budget_from_env("ASSAY_SIMILAR_CACHE_MB", 512), lambda pool: pool.nbytes, max_age_seconds=POOL_TTL_SECONDS
)


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def load_pool(engine: Engine, key: str) -> Pool:
    """(sample ids, unit vectors) of every embedded sample of a visible batch under `key`.
    Each distinct text's vector is decoded once, however many samples share it."""
    query = (
        select(Sample.id, Sample.content_hash)
        .join(Batch, Batch.id == Sample.batch_id)
        .join(Embedding, and_(Embedding.content_hash == Sample.content_hash, Embedding.model == key))
        .where(Batch.status.not_in(HIDDEN_STATUSES))
        .order_by(Sample.id)
    )
    vectors = (
        select(Embedding.content_hash, Embedding.dim, Embedding.vector)
        .where(Embedding.model == key)
        .where(Embedding.content_hash.in_(select(Sample.content_hash).distinct()))
    )
    with session_scope(engine, write=False) as session:
        rows = session.execute(query).all()
        found = session.execute(vectors).all()
    if not rows or not found:
        return Pool(np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
    dim = found[0][1]
    row_of = {h: i for i, (h, _, _) in enumerate(found)}
    unique = _unit(decode_vectors([blob for _, _, blob in found], dim))
    ids = np.fromiter((sample_id for sample_id, _ in rows), dtype=np.int64, count=len(rows))
    which = np.fromiter((row_of[h] for _, h in rows), dtype=np.int64, count=len(rows))
    return Pool(ids, unique[which])


def _pool(engine: Engine, key: str) -> Pool:
    cache_id = f"{engine.url.render_as_string(hide_password=True)}|{key}"
    return _pools.get_or_build(cache_id, lambda: load_pool(engine, key))


def clear_cache() -> None:
    """Forget every cached pool (tests; after a bulk re-embedding)."""
    _pools.clear()


def embed_command(engine: Engine, sample_id: int, model: str) -> str:
    """The command that embeds the sample's batch (or the reference sets)."""
    with session_scope(engine, write=False) as session:
        row = session.execute(
            select(Batch.name, Batch.origin)
            .join(Sample, Sample.batch_id == Batch.id)
            .where(Sample.id == sample_id)
        ).first()
    if row is None:
        raise KeyError(f"no sample {sample_id}")
    name, origin = row
    scope = (
        "--reference"
        if origin == REFERENCE_ORIGIN
        else "--eval"
        if origin == "eval"
        else f"--batch {shlex.quote(name)}"
    )
    model_option = "" if model == DEFAULT_MODEL else f" --model {shlex.quote(model)}"
    return f"python -m curation embed {scope}{model_option}"


def query_vector(engine: Engine, sample_id: int, key: str) -> np.ndarray | None:
    """The sample's own cached unit vector under `key`, read from the store (not the pool,
    which may be a minute old), or None."""
    with session_scope(engine, write=False) as session:
        exists_ = session.scalar(select(Sample.id).where(Sample.id == sample_id))
        if exists_ is None:
            raise KeyError(f"no sample {sample_id}")
        row = session.execute(
            select(Embedding.dim, Embedding.vector)
            .join(Sample, Sample.content_hash == Embedding.content_hash)
            .where(Sample.id == sample_id, Embedding.model == key)
        ).first()
    if row is None:
        return None
    return _unit(decode_vectors([row[1]], row[0]))[0]


def top_k(pool: Pool, vector: np.ndarray, sample_id: int, k: int) -> list[tuple[int, float]]:
    """The `k` pool rows most similar to `vector` (cosine), `sample_id` itself left out,
    most similar first (ties by sample id)."""
    if not len(pool.ids) or k <= 0 or pool.matrix.shape[1] != vector.shape[0]:
        return []
    scores = pool.matrix @ vector
    scores[pool.ids == sample_id] = -np.inf
    take = min(k, len(scores))
    candidates = np.argpartition(-scores, take - 1)[:take] if take < len(scores) else np.arange(len(scores))
    ranked = sorted(candidates, key=lambda i: (-float(scores[i]), int(pool.ids[i])))
    return [(int(pool.ids[i]), float(scores[i])) for i in ranked if np.isfinite(scores[i])]


def similar_samples(
    engine: Engine,
    sample_id: int,
    *,
    k: int = 10,
    model: str = DEFAULT_MODEL,
    mode: str = "prompt+response",
    actor: Actor | None = None,
) -> list[SimilarSample]:
    """The `k` samples most similar to `sample_id` across every visible batch and
    reference set, most similar first, with their current decisions. A neighbour in a
    blind batch that `actor` has not decided shows no decision (see `review.blind`).

    Raises NotEmbedded (naming the command to run) when the sample has no cached
    embedding under `model`, and KeyError when there is no such sample."""
    key = cache_key(model, mode)
    vector = query_vector(engine, sample_id, key)
    if vector is None:
        raise NotEmbedded(
            f"sample {sample_id} has no cached {key} embedding; embed it first: "
            f"{embed_command(engine, sample_id, model)}"
        )
    found = top_k(_pool(engine, key), vector, sample_id, k)
    details = _details(engine, [other for other, _ in found])
    similar = [
        SimilarSample(
            sample_id=other,
            batch_id=details[other][0],
            batch=details[other][1],
            origin=details[other][2],
            similarity=similarity,
            decision=details[other][3],
            decided_by=details[other][4],
            prompt=details[other][5],
            response=details[other][6],
        )
        for other, similarity in found
        if other in details
    ]
    hidden = hidden_rows(engine, actor, [s.sample_id for s in similar])
    return [replace(s, decision=None, decided_by=None) if s.sample_id in hidden else s for s in similar]


def _details(engine: Engine, sample_ids: list[int]) -> dict[int, tuple]:
    """sample id -> (batch id, batch, origin, decision, decided by, prompt, response) of
    the samples still in a visible batch."""
    if not sample_ids:
        return {}
    latest = (
        select(Decision.sample_id, func.max(Decision.id).label("last"))
        .where(Decision.sample_id.in_(sample_ids))
        .group_by(Decision.sample_id)
        .subquery()
    )
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(
                Sample.id,
                Sample.batch_id,
                Batch.name,
                Batch.origin,
                Sample.decision,
                *text_previews(PREVIEW_CHARS),
            )
            .join(Batch, Batch.id == Sample.batch_id)
            .where(Sample.id.in_(sample_ids), Batch.status.not_in(HIDDEN_STATUSES))
        ).all()
        by = dict(
            session.execute(
                select(Decision.sample_id, Decision.reviewer).join(latest, latest.c.last == Decision.id)
            ).all()
        )
    return {
        sid: (batch_id, batch, origin, decision, by.get(sid), prompt, response)
        for sid, batch_id, batch, origin, decision, prompt, response in rows
    }


def reviewer_decision(engine: Engine, sample_id: int, reviewer: str) -> str | None:
    """`reviewer`'s live decision on the sample (their latest human event not undone), or None."""
    with session_scope(engine, write=False) as session:
        events = list(
            session.execute(
                select(
                    Decision.id, Decision.sample_id, Decision.reviewer, Decision.action, Decision.undoes_id
                )
                .where(Decision.sample_id == sample_id, Decision.bulk_event_id.is_(None))
                .order_by(Decision.id)
            )
        )
    stack = live_stacks(events).get((sample_id, reviewer.strip()))
    return stack[-1].action if stack else None
