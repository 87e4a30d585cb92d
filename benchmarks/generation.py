"""Generation throughput against the local OpenAI-compatible server with 100 ms per request.

    .venv/bin/python benchmarks/generation.py [--latency 0.1] [--seconds 6] [--levels 1,16,64,256]

For each concurrency level, a fresh SQLite store (as in real use: cache on, every
response committed) and the real engine (`run_generation`) generate enough items
to keep the endpoint busy for about `--seconds`. The server runs in a separate
process, so the client CPU figure is the generating processes' alone (event loop,
openai client, writer thread; shard processes included, see `--processes`).
Ideal throughput is concurrency / latency.
Prints a table; record it in BENCHMARKS.md. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curation.generation.run import run_generation  # noqa: E402
from curation.store import open_store  # noqa: E402

KEY_ENV = "ASSAY_BENCH_KEY"


def start_server(latency: float, *options: str) -> tuple[subprocess.Popen, str]:
    """The test server in a process of its own (`options`: more of its command-line flags)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "curation.testing.openai_server",
            "--port",
            "0",
            "--latency",
            str(latency),
            *options,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
    )
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"test server did not start: {line!r}")
    return process, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def problem_file(path: Path, count: int, offset: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            a, b = offset + i, (i * 7919) % 1000
            record = {
                "family": "math",
                "prompt": f"Calculate {a} + {b}.",
                "reference": {"answer": str(a + b)},
            }
            handle.write(json.dumps(record) + "\n")


def run_level(
    base_url: str, concurrency: int, latency: float, seconds: float, tmp: Path, processes: int
) -> dict[str, float]:
    count = max(50, int(concurrency / latency * seconds))
    path = tmp / f"problems-{concurrency}.jsonl"
    problem_file(path, count, offset=concurrency * 1_000_000)
    engine = open_store(f"sqlite:///{tmp}/bench-{concurrency}.db")
    total_started = time.perf_counter()
    result = run_generation(
        engine,
        {
            "batch": f"bench {concurrency}",
            "family": "math",
            "source": {"kind": "file", "path": str(path)},
            "teacher": {
                "kind": "openai",
                "base_url": base_url,
                "model": "test-model",
                "api_key_env": KEY_ENV,
                "concurrency": concurrency,
                "timeout": 30,
                "processes": processes,
            },
        },
    )
    total_seconds = time.perf_counter() - total_started
    run = result["run"]
    assert result["ok"] == count and run["requests"] == count, result
    achieved = count / run["engine_seconds"]
    ideal = concurrency / latency
    return {
        "concurrency": concurrency,
        "requests": count,
        "seconds": run["engine_seconds"],
        "total_seconds": total_seconds,
        "by_process": "/".join(str(n) for n in run.get("requests_by_process") or [count]),
        "achieved": achieved,
        "ideal": ideal,
        "ratio": achieved / ideal,
        "cpu_per_1000": (run["cpu_seconds"] + run["shard_cpu_seconds"]) / count * 1000,
        "processes": run["shards"],
        "p50": result["latency_ms"]["p50"],
        "p99": result["latency_ms"]["p99"],
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--seconds", type=float, default=6.0, help="target duration of each level")
    parser.add_argument("--levels", default="1,16,64,256")
    parser.add_argument("--processes", type=int, default=0, help="shard processes (0: automatic)")
    args = parser.parse_args()
    os.environ.setdefault(KEY_ENV, "bench-key")
    server, base_url = start_server(args.latency)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for level in (int(x) for x in args.levels.split(",")):
                rows.append(run_level(base_url, level, args.latency, args.seconds, Path(tmp), args.processes))
                time.sleep(0.5)
    finally:
        server.kill()
        server.wait()
    print(
        f"generation throughput, local server with {args.latency * 1000:.0f} ms per request, "
        f"{os.cpu_count()} CPUs, SQLite store, cache on"
    )
    print(
        f"{'concurrency':>11} {'procs':>5} {'requests':>8} {'seconds':>8} {'req/s':>8} {'ideal':>8} {'ratio':>6} "
        f"{'CPU s/1k req':>12} {'p50 ms':>7} {'p99 ms':>7} {'total s':>8} {'by process':>12} {'load':>5}"
    )
    for row in rows:
        print(
            f"{row['concurrency']:>11} {row['processes']:>5} {row['requests']:>8} {row['seconds']:>8.2f} {row['achieved']:>8.1f} "
            f"{row['ideal']:>8.0f} {row['ratio']:>6.2f} {row['cpu_per_1000']:>12.2f} {row['p50']:>7.1f} "
            f"{row['p99']:>7.1f} {row['total_seconds']:>8.2f} {row['by_process']:>12} {row['load']:>5.1f}"
        )
    print(
        "seconds: the engine's run, from its start after the preparation to the last answer committed (shard"
    )
    print(
        "processes are started before, while the run prepares); total s: the whole run_generation call (plan,"
    )
    print("request rows, cache keys, shard start-up included);")
    print("by process: requests made by the coordinator / each shard process (work is shared as it goes);")
    print("load: the machine's 1-minute load average after the level (other processes compete for the CPUs)")


if __name__ == "__main__":
    main()
