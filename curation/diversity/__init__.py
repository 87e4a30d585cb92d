"""Diversity: embeddings, deduplication, diversity metrics against real data, and a
model-collapse monitor across generations.

Modules (heavy libraries — torch, sentence-transformers, faiss, scikit-learn — are
imported inside functions, never when this package is imported):

* `text` — normalisation, word tokens, stable n-gram hashes (shared by dedup and metrics).
* `embed` — sentence embeddings (all-MiniLM-L6-v2 offline by default) with a fast path.
* `knn` — nearest neighbours on L2-normalised vectors (faiss): exact for small sets, an
  HNSW graph above `knn.EXACT_MAX` (IVF for the metrics).
* `vectorfile` — memory-mapped float32 sidecar matrices of cached vectors for big searches.
* `dedup` — exact, MinHash-LSH near-duplicate, semantic and 13-gram contamination finders.
* `metrics` — Vendi, distinct-n, nearest-neighbour cosine, spread, PRDC, cluster
  occupancy, lengths; warnings with the thresholds of `DiversityThresholds`.
* `collapse` — metric trends across the generations of a lineage.
* `projection` — fixed 2-D PCA map fitted on the reference set.
* `service` — the store-facing side: embedding cache, marks, snapshots, jobs.
* `neighbours` — nearest neighbours of one sample for the review card, from cached vectors.
* `lru` — the byte-budgeted, thread-safe LRU behind the embedder and neighbour caches.
* `cli` — `embed`, `dedup`, `diversity` and `collapse` subcommands; `jobs` — their job kinds.
"""

from curation.diversity.thresholds import DiversityThresholds

__all__ = ["DiversityThresholds"]
