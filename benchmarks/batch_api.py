"""Driver CPU of `--batch-api` next to online mode, per 1,000 requests, in one run.

    .venv/bin/python benchmarks/batch_api.py [--requests 1000] [--rounds 3]

The local OpenAI-compatible server runs in its own process (its CPU is not counted).
Each round generates `--requests` answers into a fresh SQLite store three ways, one
after the other: online (concurrency 64, 20 ms per request), Batch API with every
request answered, and Batch API with 10% of each batch expiring and 5% failing (the
resubmissions included). The CPU figure is the generating process's
(`run["cpu_seconds"]`: event loop, client, JSON, writer thread); the plan and request
rows made before the engine starts are outside it, as in benchmarks/generation.py.
Prints the median of the rounds and the ratio to online. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.generation import problem_file, start_server  # noqa: E402
from curation.generation.run import run_generation  # noqa: E402
from curation.store import open_store  # noqa: E402

KEY_ENV = "ASSAY_BENCH_KEY"
MODES = {
    "online": ({}, False),
    "batch API": ({}, True),
    "batch API, 10% expired + 5% failed": ({"--batch-expire": "0.10", "--batch-fail": "0.05"}, True),
}


def run_mode(name: str, requests: int, tmp: Path, round_index: int) -> dict[str, float]:
    options, batch_api = MODES[name]
    server, base_url = start_server(0.02, *(part for pair in options.items() for part in pair))
    try:
        slug = f"{round_index}-{abs(hash(name))}"
        path = tmp / f"problems-{slug}.jsonl"
        problem_file(path, requests, offset=round_index * 1_000_000)
        engine = open_store(f"sqlite:///{tmp}/bench-{slug}.db")
        result = run_generation(
            engine,
            {
                "batch": name,
                "family": "math",
                "source": {"kind": "file", "path": str(path)},
                "teacher": {
                    "kind": "openai",
                    "base_url": base_url,
                    "model": "test-model",
                    "api_key_env": KEY_ENV,
                    "concurrency": 64,
                    "timeout": 30,
                    "processes": 1,
                },
                "batch_api": batch_api,
                "batch_poll_seconds": 0.05,
            },
        )
    finally:
        server.kill()
        server.wait()
    run = result["run"]
    assert result["ok"] == requests, result
    return {
        "cpu_per_1000": run["cpu_seconds"] / requests * 1000,
        "seconds": run["engine_seconds"],
        "requests": run["requests"],
        "resubmitted": (run.get("batch_api") or {}).get("resubmitted", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault(KEY_ENV, "bench-key")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in MODES}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            for name in MODES:
                results[name].append(run_mode(name, args.requests, Path(tmp), round_index))
                time.sleep(0.3)
    load_after = os.getloadavg()[0]
    online = statistics.median(row["cpu_per_1000"] for row in results["online"])
    print(
        f"driver CPU per 1,000 requests, {args.requests:,} requests x {args.rounds} rounds (median), "
        f"{os.cpu_count()} CPUs, SQLite store; load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print(
        f"{'mode':<38} {'CPU s/1k req':>12} {'vs online':>9} {'engine s':>9} {'requests':>9} {'resubmitted':>11}"
    )
    for name, rows in results.items():
        cpu = statistics.median(row["cpu_per_1000"] for row in rows)
        print(
            f"{name:<38} {cpu:>12.3f} {cpu / online:>9.2f} {statistics.median(r['seconds'] for r in rows):>9.2f} "
            f"{int(statistics.median(r['requests'] for r in rows)):>9} "
            f"{int(statistics.median(r['resubmitted'] for r in rows)):>11}"
        )


if __name__ == "__main__":
    main()
