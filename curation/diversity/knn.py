"""Nearest neighbours by cosine on L2-normalised vectors (faiss inner product).

Up to ``EXACT_MAX`` base vectors the search is exact (IndexFlatIP). Beyond, an
inverted-file index (IndexIVFFlat, about 4·√n lists, ``nprobe`` probed) keeps a
search over 100k vectors to seconds and over 1M to minutes on two cores; its
recall for pairs at cosine ≥ 0.95 is close to 1 because such pairs almost always
share a list. HNSW was measured slower to build on 2 cores and is not used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EXACT_MAX = 20_000
NPROBE = 16


def _faiss() -> Any:
    import faiss  # heavy: loaded only for a search

    return faiss


def n_lists(n: int) -> int:
    return max(16, int(4 * math.sqrt(n)))


def train_quantizer(x: np.ndarray, nlist: int | None = None, *, seed: int = 0) -> Any:
    """A coarse quantizer (k-means centroids in a flat IP index) for IVF indexes.

    One quantizer can serve several indexes over vectors of the same distribution
    (the metrics use one for the synthetic, reference and baseline sets)."""
    faiss = _faiss()
    x = np.ascontiguousarray(x, dtype=np.float32)
    nlist = min(nlist or n_lists(len(x)), len(x))
    train_size = min(len(x), 40 * nlist)
    rng = np.random.default_rng(seed)
    train = x if train_size == len(x) else x[np.sort(rng.choice(len(x), train_size, replace=False))]
    km = faiss.Kmeans(x.shape[1], nlist, niter=10, seed=seed, spherical=True)
    km.train(train)
    quantizer = faiss.IndexFlatIP(x.shape[1])
    quantizer.add(km.centroids)
    return quantizer


def build_index(
    base: np.ndarray, *, exact: bool | None = None, quantizer: Any = None, nprobe: int = NPROBE, seed: int = 0
) -> Any:
    """A faiss inner-product index over `base` ((n, d) float32, rows L2-normalised).

    Exact up to EXACT_MAX rows (or when `exact`), else IVF over `quantizer` (trained
    on `base` when not given)."""
    faiss = _faiss()
    base = np.ascontiguousarray(base, dtype=np.float32)
    n, d = base.shape
    if exact is None:
        exact = n <= EXACT_MAX
    if exact:
        index = faiss.IndexFlatIP(d)
        index.add(base)
        return index
    if quantizer is None:
        quantizer = train_quantizer(base, seed=seed)
    index = faiss.IndexIVFFlat(quantizer, d, quantizer.ntotal, faiss.METRIC_INNER_PRODUCT)
    index.add(base)
    index.nprobe = min(nprobe, quantizer.ntotal)
    return index


def search(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, indices), each (len(queries), k); index -1 / similarity -inf where fewer exist."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = max(1, min(k, index.ntotal)) if index.ntotal else 1
    if not len(queries) or not index.ntotal:
        return np.full((len(queries), k), -np.inf, dtype=np.float32), np.full(
            (len(queries), k), -1, dtype=np.int64
        )
    sims, idx = index.search(queries, k)
    sims = np.where(idx < 0, -np.inf, sims).astype(np.float32)
    return sims, idx


def knn(
    base: np.ndarray, queries: np.ndarray | None = None, k: int = 5, *, exact: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest `base` rows of each query. Without `queries`, the base searches itself and
    each row's own entry is removed (so column 0 is its nearest *other* row)."""
    index = build_index(base, exact=exact)
    if queries is not None:
        return search(index, queries, k)
    sims, idx = search(index, base, k + 1)
    return drop_self(sims, idx, k)


def drop_self(sims: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index from a self-search result, keeping k columns."""
    n = len(idx)
    own = idx == np.arange(n)[:, None]
    # Rows where self was not returned (ties, approximate search) lose their last column instead.
    missing = ~own.any(axis=1)
    own[missing, -1] = True
    keep = ~own
    width = idx.shape[1] - 1
    sims = sims[keep].reshape(n, width)[:, :k]
    idx = idx[keep].reshape(n, width)[:, :k]
    return sims, idx
