"""Find-similar latency on the review card against a naive full-scan baseline.

For each store size: a SQLite store in /tmp with synthetic batches and a reference set,
every sample embedded (random 384-d float16 vectors stored in the embedding cache).

* cached: `similar_samples` with the per-model pool already built (what every card
  after the first pays within a minute): one matrix-vector product plus two small
  queries;
* cold: the first lookup, which builds the pool (every cached vector decoded once);
* naive: every lookup reads every embedded sample's vector from the store and scans
  them (no pool cache).

    .venv/bin/python benchmarks/similar.py [--sizes 10000 50000] [--lookups 30]

Prints p50 of each and the ratios side by side; nothing here asserts a time."""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, insert, select  # noqa: E402

from curation.diversity.embed import DEFAULT_MODEL, cache_key, encode_vectors  # noqa: E402
from curation.review import similar  # noqa: E402
from curation.store import open_store, session_scope  # noqa: E402
from curation.store.models import Batch, Embedding, Sample, utcnow  # noqa: E402

DIM = 384
BATCHES = (("synthetic-1", "synthetic"), ("synthetic-2", "synthetic"), ("reference", "real"))


def build(path: Path, n: int, seed: int = 0) -> Engine:
    engine = open_store(f"sqlite:///{path}")
    rng = np.random.default_rng(seed)
    now = utcnow()
    per = n // len(BATCHES)
    for name, origin in BATCHES:
        with session_scope(engine) as session:
            batch = Batch(name=name, origin=origin, source="benchmark")
            session.add(batch)
            session.flush()
            batch_id = batch.id
        hashes = [hashlib.sha256(f"{name}-{i}".encode()).hexdigest() for i in range(per)]
        rows = [
            {
                "batch_id": batch_id,
                "item_index": i,
                "candidate_index": 0,
                "family": "math",
                "prompt": f"{name} prompt {i}",
                "response": f"response {i}",
                "reference": {},
                "meta": {},
                "content_hash": h,
                "created_at": now,
            }
            for i, h in enumerate(hashes)
        ]
        blobs = encode_vectors(rng.normal(size=(per, DIM)).astype(np.float32))
        with session_scope(engine) as session:
            session.execute(insert(Sample), rows)
            session.execute(
                insert(Embedding),
                [
                    {"model": cache_key(DEFAULT_MODEL), "content_hash": h, "dim": DIM, "vector": b}
                    for h, b in zip(hashes, blobs, strict=True)
                ],
            )
    return engine


def naive(engine: Engine, sample_id: int, k: int = 10) -> list[tuple[int, float]]:
    """Every lookup reads and scans every cached vector (no pool cache)."""
    key = cache_key(DEFAULT_MODEL)
    pool = similar.load_pool(engine, key)
    vector = similar.query_vector(engine, sample_id, key)
    assert vector is not None
    return similar.top_k(pool, vector, sample_id, k)


def p50(fn: Callable[[int], object], ids: list[int]) -> float:
    times = []
    for sample_id in ids:
        start = time.perf_counter()
        fn(sample_id)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(n: int, lookups: int) -> str:
    """One table row for a store of about `n` samples."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = build(Path(tmp) / "similar.db", n)
        with session_scope(engine, write=False) as session:
            ids = list(session.scalars(select(Sample.id)))
        picks = [int(i) for i in np.random.default_rng(1).choice(ids, lookups, replace=False)]
        similar.clear_cache()
        start = time.perf_counter()
        similar.similar_samples(engine, picks[0])
        cold = time.perf_counter() - start
        cached = p50(lambda sid: similar.similar_samples(engine, sid), picks)
        scanned = p50(lambda sid: naive(engine, sid), picks[: max(3, lookups // 5)])
        found = [s.sample_id for s in similar.similar_samples(engine, picks[1])]
        assert found == [i for i, _ in naive(engine, picks[1])], "the cached lookup disagrees with the scan"
        engine.dispose()
    return (
        f"{len(ids):>9,} {cached * 1e3:>14.1f} {cold * 1e3:>9.0f} {scanned * 1e3:>13.0f} "
        f"{scanned / cached:>12.0f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--lookups", type=int, default=30)
    args = parser.parse_args()
    print(f"{'samples':>9} {'cached p50 ms':>14} {'cold ms':>9} {'naive p50 ms':>13} {'naive/cached':>13}")
    for n in args.sizes:
        print(measure(n, args.lookups))


if __name__ == "__main__":
    main()
