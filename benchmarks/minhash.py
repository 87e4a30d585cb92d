"""MinHash near-duplicates at 100k and 1M texts (issue 14: 1M ≤ 90 s on 2 cores, recall ≥ 0.97).

    python benchmarks/minhash.py [--sizes 100000 1000000] [--skip-store]

Texts come from `benchmarks/diversity.py`'s generator (2–5 varied sentences, 2 % planted
near-copies, 0.5 % re-cased exact copies). Per size:

* library — `dedup.near_duplicates(texts)`: signatures in forked worker processes (every
  core), LSH bands, exact Jaccard of the candidates. Recall = planted copies found among
  those whose true word-5-gram Jaccard with their source is ≥ 0.8.
* store — the dedup job's path: `minhash_signatures_for` on a fresh SQLite store (signatures
  computed and written by this process), then the same near-duplicate search; then a rerun
  (every signature read back from the store, none computed) and a rerun after 1 % new texts.

Prints seconds, recall and the load average before and after each size.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.diversity import generate  # noqa: E402
from curation.diversity import dedup, minhash  # noqa: E402
from curation.diversity.service import minhash_signatures_for  # noqa: E402
from curation.store import open_store  # noqa: E402


def recall(texts: list[str], planted: dict[int, int], found: list[dedup.Finding]) -> tuple[float, int]:
    pairs = sorted(planted.items())
    sets = dedup.ShingleSets(*minhash.shingle_hashes([t for i, s in pairs for t in (texts[i], texts[s])]))
    due = {i for k, (i, _) in enumerate(pairs) if sets.jaccard(2 * k, 2 * k + 1) >= 0.8}
    hits = {f.index for f in found}
    return len(hits & due) / max(len(due), 1), len(due)


def timed(fn, *args, **kwargs):  # noqa: ANN001, ANN201 - a tiny helper
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def bench(n: int, store: bool) -> None:
    texts, planted = generate(n, seed=1)
    print(f"\n## {n:,} texts (load {load()})", flush=True)
    found, seconds = timed(dedup.near_duplicates, texts)
    r, due = recall(texts, planted, found)
    print(
        f"library: {seconds:.1f} s, {len(found):,} near-duplicates, recall {r:.4f} of {due:,} planted pairs ≥ 0.8"
    )
    if not store:
        return
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    params = minhash.MinHashParams()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP", "/tmp")) as tmp:
        engine = open_store(f"sqlite:///{tmp}/bench.db")

        def run(count: int) -> tuple[float, float, int, int, float]:
            start = time.perf_counter()
            sig, stats = minhash_signatures_for(engine, hashes[:count], texts[:count], params)
            found = dedup.near_duplicates(texts[:count], signatures=sig)
            return time.perf_counter() - start, stats.seconds, stats.computed, stats.stored, len(found)

        base = n - n // 100
        for label, count in (("first run", base), ("rerun", base), ("rerun +1 % new", n)):
            total, sig_seconds, computed, stored, found_count = run(count)
            print(
                f"store ({label}, {count:,} texts): {total:.1f} s ({sig_seconds:.1f} s signatures: "
                f"{computed:,} computed, {stored:,} read from the store), {found_count:,} near-duplicates",
                flush=True,
            )
        engine.dispose()
    print(f"load after: {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--skip-store", action="store_true")
    args = parser.parse_args()
    print(f"CPUs: {os.cpu_count()}; goal: 1M ≤ 90 s, recall ≥ 0.97")
    for n in args.sizes:
        bench(n, store=not args.skip_store)


if __name__ == "__main__":
    main()
