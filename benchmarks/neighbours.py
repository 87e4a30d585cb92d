"""All-neighbours (k=10) and semantic dedup at 100k and 1M vectors through the HNSW graph of
`curation.diversity.knn` (issue 14).

    PYTHONPATH=<tree> nice -n 19 python benchmarks/neighbours.py [--sizes 100000 1000000] [--dir /tmp/x]

Data: clustered unit vectors, d=384 (2,000 clusters, cluster spread 0.04–0.07 per dimension:
cosine ~0.3–0.6 within a cluster, ~0 across), and 1 % planted near-copies of an earlier row
(cosine 0.96–0.995), written to a float32 .npy file per size. Each size runs in a child
process that memory-maps the file (`np.load(mmap_mode="r")`) and calls `knn.knn(matrix,
k=10)` (graph built from the mapped rows block by block, self-search queries read from the
index's own copy), so its peak RSS (ru_maxrss, taken before the recall check) is one copy of
the vectors plus the graph. Recall: for every planted copy, whether its source is among its
10 neighbours with cosine ≥ 0.95 (the semantic-dedup decision), and recall@10 against exact
search for up to `--exact-queries` planted copies (exact = numpy over the mapped matrix,
block by block). Growth = time(largest) / time(smallest); goal ≤ 12× for 100k → 1M.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curation.diversity import knn  # noqa: E402

D = 384
K = 10
THRESHOLD = 0.95


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(
    path: Path, n: int, *, d: int = D, seed: int = 0, clusters: int = 2000, planted_share: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Write n clustered unit vectors with planted near-copies to `path` (float32 .npy);
    returns (copies, sources): row copies[i] is a near-copy of the earlier row sources[i]."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((clusters, d)).astype(np.float32))
    spread = rng.uniform(0.04, 0.07, clusters).astype(np.float32)
    out = open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        label = rng.integers(0, clusters, m)
        noise = rng.standard_normal((m, d), dtype=np.float32)
        out[start : start + m] = unit(centres[label] + spread[label, None] * noise)
    k = int(n * planted_share)
    copies = np.sort(rng.choice(np.arange(n // 2, n), k, replace=False))
    sources = rng.integers(0, n // 2, k)
    scale = rng.uniform(0.006, 0.014, k).astype(np.float32)[:, None]
    out[copies] = unit(out[sources] + scale * rng.standard_normal((k, d), dtype=np.float32))
    out.flush()
    del out
    return copies, sources


def exact_topk(matrix: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact k nearest rows of `matrix` (memory-mapped, read block by block) per query."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    for start, block in knn.blocks(matrix):
        s = queries @ block.T
        i = np.broadcast_to(np.arange(start, start + len(block)), s.shape)
        all_s = np.concatenate([best_s, s], axis=1)
        all_i = np.concatenate([best_i, i], axis=1)
        top = np.argpartition(-all_s, k - 1, axis=1)[:, :k]
        best_s = np.take_along_axis(all_s, top, axis=1)
        best_i = np.take_along_axis(all_i, top, axis=1)
    return best_i


def child(path: Path, exact_queries: int) -> dict:
    planted = np.load(path.with_suffix(".planted.npz"))
    copies, sources = planted["copies"], planted["sources"]
    matrix = np.load(path, mmap_mode="r")
    n = len(matrix)
    start = time.perf_counter()
    index = knn.build_graph(matrix)
    built = time.perf_counter()
    sims, idx = knn.search(index, knn.stored_vectors(index), K + 1)
    sims, idx = knn.drop_self(sims, idx, K)
    done = time.perf_counter()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"n={n:,}: build {built - start:.1f} s, search {done - built:.1f} s, peak RSS {rss_mb:.0f} MB, "
        f"load {os.getloadavg()[0]:.1f}; checking recall…",
        file=sys.stderr,
        flush=True,
    )
    del index
    found = ((idx[copies] == sources[:, None]) & (sims[copies] >= THRESHOLD)).any(axis=1)
    rng = np.random.default_rng(1)
    sample = np.sort(rng.choice(len(copies), min(exact_queries, len(copies)), replace=False))
    queries = np.ascontiguousarray(matrix[copies[sample]])
    truth = exact_topk(matrix, queries, K + 1)
    got = idx[copies[sample]]
    recall_at_k = np.mean(
        [len(set(g) & (set(t) - {c})) / K for g, t, c in zip(got, truth, copies[sample], strict=True)]
    )
    return {
        "n": n,
        "build_s": built - start,
        "search_s": done - built,
        "seconds": done - start,
        "peak_rss_mb": rss_mb,
        "vectors_mb": matrix.nbytes / 2**20,
        "planted": len(copies),
        "planted_found": int(found.sum()),
        "pair_recall": float(found.mean()),
        "exact_queries": len(sample),
        "recall_at_k": float(recall_at_k),
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/assay-neighbours"))
    parser.add_argument("--exact-queries", type=int, default=2000)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.exact_queries)))
        return

    args.dir.mkdir(parents=True, exist_ok=True)
    rows = []
    print(
        f"HNSW M={knn.HNSW_M} efConstruction={knn.HNSW_EF_CONSTRUCTION} efSearch={knn.HNSW_EF_SEARCH}; "
        f"faiss threads {knn._faiss().omp_get_max_threads()}; CPUs {os.cpu_count()}",
        flush=True,
    )
    for n in args.sizes:
        path = args.dir / f"vectors-{n}.npy"
        if not path.exists() or not path.with_suffix(".planted.npz").exists():
            print(f"writing {n:,} vectors to {path}…", flush=True)
            copies, sources = clustered(path, n)
            np.savez(path.with_suffix(".planted.npz"), copies=copies, sources=sources)
        load_before = os.getloadavg()[0]
        print(f"all-neighbours at {n:,} (load {load_before:.1f})…", flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "--exact-queries", str(args.exact_queries)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["load_before"] = load_before
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(
        "| n | build | search | total | peak RSS | vectors | pair recall (planted, cos ≥ 0.95) | recall@10 vs exact | load |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['build_s']:.1f} s | {r['search_s']:.1f} s | {r['seconds']:.1f} s | "
            f"{r['peak_rss_mb']:.0f} MB | {r['vectors_mb']:.0f} MB | {r['pair_recall']:.4f} "
            f"({r['planted_found']}/{r['planted']}) | {r['recall_at_k']:.4f} ({r['exact_queries']} queries) | "
            f"{r['load_before']:.1f} → {r['load']:.1f} |"
        )
    if len(rows) >= 2:
        growth = rows[-1]["seconds"] / rows[0]["seconds"]
        print(
            f"growth {rows[0]['n']:,} → {rows[-1]['n']:,}: {growth:.1f}× (goal ≤ 12×; "
            f"linear {rows[-1]['n'] / rows[0]['n']:.0f}×); build {rows[-1]['build_s'] / rows[0]['build_s']:.1f}×, "
            f"search {rows[-1]['search_s'] / rows[0]['search_s']:.1f}×"
        )


if __name__ == "__main__":
    main()
