"""Nearest neighbours by cosine on L2-normalised vectors (faiss inner product).

Up to ``EXACT_MAX`` base vectors the search is exact (IndexFlatIP). Beyond, `knn` (all
neighbours of a set, semantic dedup, matches against another set) searches an HNSW graph
(faiss IndexHNSWFlat, inner product, M = ``HNSW_M``, efConstruction =
``HNSW_EF_CONSTRUCTION``, efSearch = ``HNSW_EF_SEARCH``). The inverted-file index
(IndexIVFFlat, about 4·√n lists, ``nprobe`` probed) remains for the metrics, which share one
trained quantizer between sets; its cost grows like n^1.5 (22× from 10k to 100k).

Parameters chosen by measurement (issue 14; 2026-12-06, 2 shared cores). Data: clustered
384-d unit vectors (isotropic noise around each cluster centre, cosine ~0.3–0.6 within a
cluster, ~0 across) with 1 % planted near-copies at cosine 0.96–0.995; all-neighbours
k=10; "pair recall" = share of planted copies whose source is among their neighbours at
cosine ≥ 0.95 (the semantic-dedup decision); recall@10/11 against exact search on the
planted queries.

100k vectors in 2,000 clusters (50 per cluster):

    index                         build    search   pair recall  recall@11  load
    IVF (previous), nprobe 16      11.5 s   12.7 s   1.0000       0.9916     1.6
    HNSW M16 efC40, efSearch 16    23.4 s    7.0 s   0.8940       0.8796     2.5
                    efSearch 32              14.7 s   0.9640       0.9512     2.8
                    efSearch 64              29.8 s   0.9980       0.9863     3.8
    HNSW M16 efC40 (rerun), ef 64  84.0 s   40.6 s   0.9980       0.9863     8.7
                    efSearch 128            172.4 s   1.0000       0.9884     9.2
    usearch 2.26.6 f32 M16 efC40  171.8 s   57.2 s   0.8320 (efSearch 16)   7.6

M16 efC40 efSearch 96 then failed at 1M (benchmarks/neighbours.py, 2,000 clusters of
~500): pair recall 0.6586, recall@10 0.5986. Within a cluster of isotropic noise all
members are about equally far apart, so a greedy graph search has no gradient towards a
copy's source; the denser the clusters, the worse. Searching for the planted copies at
the 1M density (500 per cluster), load ~2 (all-search time estimated from the copies):

    n     clusters  index                         build   all-search  pair recall
    100k  200       HNSW M16 efC40, efSearch 96     8.6 s   15.7 s     0.9590
                                    efSearch 256            22.0 s     0.9750
    100k  200       HNSW M32 efC40, efSearch 96    10.4 s   15.1 s     0.9820
                                    efSearch 256            24.0 s     0.9890
    100k  200       HNSW M16 efC80, efSearch 96    13.6 s   12.7 s     0.9970
                                    efSearch 256            21.2 s     0.9980
    100k  200       HNSW M32 efC80, efSearch 96    14.5 s   13.9 s     1.0000
    300k  600       HNSW M32 efC80, efSearch 96    64.9 s   54.3 s     0.9977
                                    efSearch 160            63.1 s     0.9997

efConstruction matters most (a copy is linked to its source when inserted), then M;
efSearch 160 keeps the margin at 300k for little search time. Hence M=32,
efConstruction=80, efSearch=160: at 1M (2,000 clusters, benchmarks/neighbours.py, load ~3)
pair recall 0.9942, recall@10 0.989, build 631.5 s + search 491.1 s, peak RSS 2,043 MB; on a
quiet machine (load 1.2–2.1) 100k took 54.0 s and 1M 362.1 s (build 165.0 s + search
197.1 s): growth 6.7×. The IVF index is quicker at 100k but grows like n^1.5
(about 31× to 1M). usearch (not a dependency; measured from a scratch install) built no
faster on 2 cores and found fewer planted pairs at equal efSearch, so it is not used.
HNSW insertion on several threads links the graph a little differently run to run
(tests/diversity/test_diversity_knn_graph.py holds the graph to exact search).

Memory: `build_graph` / `build_exact` / `search` take memory-mapped matrices (see
`vectorfile`) and read them block by block, releasing each block's pages, and a
self-search reads its queries from the index's own copy (`stored_vectors`): peak memory
is one copy of the vectors plus the graph (2·M int32 links per vector at level 0, 256 bytes at M=32).
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Iterator
from typing import Any

import numpy as np

EXACT_MAX = 20_000
NPROBE = 16
#: HNSW parameters (chosen by measurement, see the module docstring).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 160
#: Rows added to / searched in an index at a time; pages of a memory-mapped input are
#: released after each block, so a memory-mapped matrix never becomes resident as a whole.
BLOCK_ROWS = 32_768


def _faiss() -> Any:
    import faiss  # heavy: loaded only for a search

    return faiss


def _mapping(x: np.ndarray) -> mmap.mmap | None:
    """The mmap a (memory-mapped) array's data lives in, if any."""
    base: Any = x
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


def release_pages(x: np.ndarray) -> None:
    """Drop the resident pages of a memory-mapped, read-only array from this process (the
    kernel keeps them in the page cache; a later read faults them back in). A no-op for
    arrays in ordinary memory."""
    mapping = _mapping(x)
    if mapping is None or not x.size or not x.flags.c_contiguous:
        return
    start_address = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
    first = x.ctypes.data - start_address
    last = first + x.nbytes
    page = mmap.PAGESIZE
    first -= first % page
    last = min(len(mapping), -(-last // page) * page)
    mapping.madvise(mmap.MADV_DONTNEED, first, last - first)


def blocks(x: np.ndarray, rows: int = BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """(start row, contiguous float32 block) of `x`, releasing a memory-mapped block's pages
    once the caller is done with it."""
    for start in range(0, len(x), rows):
        part = x[start : start + rows]
        yield start, np.ascontiguousarray(part, dtype=np.float32)
        release_pages(part)


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


def build_graph(
    base: np.ndarray,
    *,
    m: int = HNSW_M,
    ef_construction: int = HNSW_EF_CONSTRUCTION,
    ef_search: int = HNSW_EF_SEARCH,
) -> Any:
    """An HNSW inner-product index (faiss IndexHNSWFlat) over `base` ((n, d), rows
    L2-normalised), added block by block: a memory-mapped `base` is read once and its pages
    are released, so the index holds the only resident copy of the vectors."""
    faiss = _faiss()
    index = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.hnsw.efSearch = ef_search
    for _, part in blocks(base):
        index.add(part)
    return index


def build_exact(base: np.ndarray) -> Any:
    """An exact inner-product index (IndexFlatIP), added block by block like `build_graph`."""
    index = _faiss().IndexFlatIP(base.shape[1])
    for _, part in blocks(base):
        index.add(part)
    return index


def stored_vectors(index: Any) -> np.ndarray:
    """The (ntotal, d) float32 vectors inside a flat or HNSW-flat index, as a view (no copy;
    valid while `index` lives). A self-search reads its queries from here, so the vectors
    are not held a second time."""
    faiss = _faiss()
    flat = faiss.downcast_index(index.storage) if hasattr(index, "storage") else index
    if not index.ntotal:
        return np.zeros((0, index.d), dtype=np.float32)
    return faiss.rev_swig_ptr(flat.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)


def search(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, indices), each (len(queries), k); index -1 / similarity -inf where fewer
    exist. Queries are searched block by block (a memory-mapped matrix is not made resident)."""
    k = max(1, min(k, index.ntotal)) if index.ntotal else 1
    sims = np.full((len(queries), k), -np.inf, dtype=np.float32)
    idx = np.full((len(queries), k), -1, dtype=np.int64)
    if not len(queries) or not index.ntotal:
        return sims, idx
    for start, part in blocks(queries):
        s, i = index.search(part, k)
        sims[start : start + len(part)] = np.where(i < 0, -np.inf, s)
        idx[start : start + len(part)] = i
    return sims, idx


def knn(
    base: np.ndarray,
    queries: np.ndarray | None = None,
    k: int = 5,
    *,
    exact: bool | None = None,
    exact_max: int = EXACT_MAX,
    ef_search: int = HNSW_EF_SEARCH,
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest `base` rows of each query: exact up to `exact_max` base rows (or when
    `exact`), else through an HNSW graph. Without `queries`, the base searches itself (its
    queries read from the index's own copy) and each row's own entry is removed (so column 0
    is its nearest *other* row). `base` and `queries` may be memory-mapped."""
    if exact is None:
        exact = len(base) <= exact_max
    index = build_exact(base) if exact else build_graph(base, ef_search=ef_search)
    if queries is not None:
        return search(index, queries, k)
    sims, idx = search(index, stored_vectors(index), k + 1)
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
