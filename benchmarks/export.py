"""Export benchmark: a 1M-row mix (900k accepted synthetic + 100k real) exported to
Parquet (goal ≤ 30 s) and JSONL, each in a fresh process so peak RSS is its own.

    python benchmarks/export.py [--rows 1000000] [--store /tmp/assay-export-bench.db] [--formats parquet jsonl]

The store is built once (bulk insert, one verdict and one decision per synthetic
sample) and reused; each run's Export and ExportRow rows are removed afterwards."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curation.auth import Actor, Role
from curation.data import content_hash  # noqa: E402

#: Benchmarks act as an admin.
ADMIN = Actor("bench", Role.ADMIN)

DEFAULT_STORE = Path(tempfile.gettempdir()) / "assay-export-bench.db"
FAMILIES = ("math", "code", "instruction", "open")


def build(store: Path, rows: int) -> None:
    """Bulk-insert the mix with sqlite3 (schema from the migrations)."""
    from curation.store import open_store

    if store.exists():
        return
    partial = store.with_name(store.name + ".part")
    partial.unlink(missing_ok=True)
    open_store(f"sqlite:///{partial}").dispose()
    real_n = rows // 10
    synthetic_n = rows - real_n
    now = "2025-01-01 00:00:00.000000"
    conn = sqlite3.connect(partial)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    config = {
        "teacher": "openai",
        "model": "gpt-4o-mini",
        "family": "math",
        "mode": "solve",
        "n": 4,
        "seed": 1,
        "template": {"system": "You are {persona}.", "user": "Solve: {problem}"},
        "teacher_config": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 1024},
    }
    conn.execute(
        "INSERT INTO batches (id, name, origin, family, source, generation_config, status, generation, lineage, stats, created_at, updated_at)"
        " VALUES (1, 'synthetic-900k', 'synthetic', NULL, 'openai:bench', ?, 'ready', 0, '{}', ?, ?, ?)",
        (json.dumps(config), json.dumps({"cost": 123.45}), now, now),
    )
    conn.execute(
        "INSERT INTO batches (id, name, origin, family, source, generation_config, status, generation, lineage, stats, created_at, updated_at)"
        " VALUES (2, 'human-100k', 'real', NULL, 'import:human.jsonl', '{}', 'ready', 0, '{}', '{}', ?, ?)",
        (now, now),
    )
    chunk = 50_000
    for start in range(0, rows, chunk):
        samples, verdicts, decisions = [], [], []
        for i in range(start, min(rows, start + chunk)):
            sid = i + 1
            synthetic = i < synthetic_n
            family = FAMILIES[i % 4]
            prompt = f"Problem {i}: a train leaves station {i % 97} at {i % 24} o'clock travelling {i % 130 + 20} km/h; when does it reach a town {i % 500 + 10} km away?"
            response = (
                (
                    f"Distance {i % 500 + 10} km over speed {i % 130 + 20} km/h gives the travel time; adding the departure "
                    f"hour {i % 24} gives the arrival. Step by step: time = d / v. \\boxed{{{i % 1000}}}"
                )
                if synthetic
                else f"Human answer {i}: it arrives after {(i % 500 + 10) / (i % 130 + 20):.2f} hours."
            )
            samples.append(
                (
                    sid,
                    1 if synthetic else 2,
                    f"b{i}",
                    i,
                    0,
                    family,
                    prompt,
                    response,
                    json.dumps({"answer": str(i % 1000)}),
                    json.dumps({"topic": "trains", "i": i}),
                    content_hash(family, prompt, response),
                    (i % 5 != 0) if synthetic else None,
                    "accept" if synthetic else None,
                    now,
                )
            )
            if synthetic:
                verdicts.append((sid, "math", "1.0", i % 5 != 0, 1.0 if i % 5 else 0.0, "", "{}", now))
                decisions.append((sid, "ada", "accept", "[]", "", now))
        conn.executemany(
            "INSERT INTO samples (id, batch_id, external_id, item_index, candidate_index, family, prompt, response, reference,"
            " metadata, content_hash, passed, decision, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            samples,
        )
        conn.executemany(
            "INSERT INTO verdicts (sample_id, verifier, version, passed, score, reason, details, created_at) VALUES (?,?,?,?,?,?,?,?)",
            verdicts,
        )
        conn.executemany(
            "INSERT INTO decisions (sample_id, reviewer, action, reason_tags, note, created_at) VALUES (?,?,?,?,?,?)",
            decisions,
        )
        conn.commit()
        print(f"  built {min(rows, start + chunk):,} rows", file=sys.stderr)
    conn.close()
    partial.rename(store)


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (the export's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_case(store: Path, fmt: str, out: Path) -> dict:
    """One export in this process: seconds, rows, peak RSS."""
    from sqlalchemy import delete

    from curation.export import ExportConfig, run_export
    from curation.store import open_store, session_scope
    from curation.store.models import Export

    engine = open_store(f"sqlite:///{store}")
    shutil.rmtree(out, ignore_errors=True)
    phases: dict[str, float] = {}
    cpu_before = _cpu()
    started = time.perf_counter()

    def progress(done: int, total: int | None, message: str) -> None:
        if message.startswith("wrote") and "plan" not in phases:
            phases["plan"] = time.perf_counter() - started

    result = run_export(engine, ADMIN, ExportConfig(out=str(out), format=fmt, eval_sets=[], seed=1), progress)
    seconds = time.perf_counter() - started
    cpu = _cpu() - cpu_before
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    with session_scope(engine) as session:
        session.execute(delete(Export).where(Export.id == result.export_id))
    return {
        "format": fmt,
        "rows": result.rows,
        "seconds": round(seconds, 2),
        "plan_seconds": round(phases.get("plan", 0.0), 2),
        "cpu_seconds": round(cpu, 2),
        "rows_per_s": round(result.rows / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "worker_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "size_mb": round(size / 1e6, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--formats", nargs="+", default=["parquet", "jsonl"])
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "assay-export-bench-out")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.store, args.case, args.out / args.case)))
        return 0
    if args.rows != 1_000_000 and args.store == DEFAULT_STORE:
        args.store = args.store.with_name(f"assay-export-bench-{args.rows}.db")
    t0 = time.perf_counter()
    fresh = not args.store.exists()
    build(args.store, args.rows)
    if fresh:
        print(f"built {args.store} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    results = []
    for fmt in args.formats:
        child = subprocess.run(
            [sys.executable, __file__, "--case", fmt, "--store", str(args.store), "--out", str(args.out)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
        if child.returncode:
            print(child.stderr, file=sys.stderr)
            return 1
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall time grows with it; CPU s does not)"
    )
    print(
        f"{'format':<9}{'rows':>11}{'wall s':>9}{'plan s':>8}{'CPU s':>8}{'rows/s':>10}{'peak RSS MB':>13}{'worker RSS':>12}{'output MB':>11}"
    )
    for r in results:
        print(
            f"{r['format']:<9}{r['rows']:>11,}{r['seconds']:>9.2f}{r['plan_seconds']:>8.2f}{r['cpu_seconds']:>8.2f}{r['rows_per_s']:>10,}"
            f"{r['peak_rss_mb']:>13,}{r['worker_rss_mb']:>12,}{r['size_mb']:>11.1f}"
        )
    shutil.rmtree(args.out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
