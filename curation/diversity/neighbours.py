"""Nearest neighbours of one sample, for the review card: the most similar samples of
its own batch and of the reference sets, from cached embeddings only (nothing is
embedded here; a batch that was never embedded has no neighbours to show)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine, func, select

from curation.diversity.embed import DEFAULT_MODEL, cache_key
from curation.diversity.lru import ByteBudgetLRU, budget_from_env
from curation.diversity.service import Selection, load_samples, load_vectors
from curation.store.db import session_scope
from curation.store.models import Batch, Sample

#: Candidate pools above this size are not searched per card (use the dedup job instead).
MAX_CANDIDATES = 50_000
_POOL_TTL_SECONDS = 60.0

Pool = tuple[np.ndarray, np.ndarray]


def _pool_bytes(pool: Pool | None) -> int:
    return 0 if pool is None else sum(part.nbytes for part in pool)


#: (sample ids, unit vectors) per (store and model, batch), refreshed after a minute so that
#: new embeddings show; at most ASSAY_NEIGHBOUR_CACHE_MB (default 256) in all.
_pools: ByteBudgetLRU[tuple[str, int], Pool | None] = ByteBudgetLRU(
    budget_from_env("ASSAY_NEIGHBOUR_CACHE_MB", 256), _pool_bytes, max_age_seconds=_POOL_TTL_SECONDS
)


def _load_pool(engine: Engine, batch_id: int, key: str) -> Pool | None:
    """(sample ids, unit vectors) of the batch plus the reference sets; None when there is
    nothing to search or too much to search per card."""
    with session_scope(engine, write=False) as session:
        real = tuple(session.scalars(select(Batch.id).where(Batch.origin == "real")))
        selection = Selection(batch_ids=(batch_id, *real))
        # Counted first: loading a million samples only to find the pool too big took 15 s
        # per card (the review page's first draw at 1M).
        size = session.scalar(selection.where(select(func.count(Sample.id)))) or 0
    if size == 0 or size > MAX_CANDIDATES:
        return None
    table = load_samples(engine, selection)
    # The pool is held in memory (in the LRU) anyway: no sidecar file for it.
    vectors, present = load_vectors(engine, table, key, spill_rows=MAX_CANDIDATES)
    ids = table.ids[present]
    matrix = vectors[present].astype(np.float32, copy=False)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return ids, matrix / np.maximum(norms, 1e-12)


def _pool(engine: Engine, batch_id: int, key: str) -> Pool | None:
    cache_id = (f"{engine.url.render_as_string(hide_password=True)}|{key}", batch_id)
    return _pools.get_or_build(cache_id, lambda: _load_pool(engine, batch_id, key))


def nearest_neighbours(
    engine: Engine, sample_id: int, k: int = 5, model: str | None = None
) -> list[tuple[int, float]]:
    """Up to `k` (sample id, cosine similarity) pairs, most similar first; empty when the
    sample has no cached embedding."""
    with session_scope(engine, write=False) as session:
        batch_id = session.scalar(select(Sample.batch_id).where(Sample.id == sample_id))
    if batch_id is None:
        raise KeyError(f"no sample {sample_id}")
    pool = _pool(engine, batch_id, cache_key(model or DEFAULT_MODEL))
    if pool is None:
        return []
    ids, matrix = pool
    where = np.flatnonzero(ids == sample_id)
    if where.size == 0:
        return []
    scores = matrix @ matrix[where[0]]
    scores[where[0]] = -np.inf
    top = np.argsort(-scores)[:k]
    return [(int(ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]
