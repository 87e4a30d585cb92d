"""A one-million-sample workspace end to end on one machine (issue 14).

    python benchmarks/million.py [--samples 1000000] [--reference 2000] [--embed-sample 2000]
                                 [--workdir DIR] [--keep]

Every stage runs what a user runs: the `python -m curation` commands as child processes
against one SQLite workspace, and the library calls the Review page makes. Per stage it
prints the wall time and the peak memory of the whole process tree (this script, the
commands it starts and their worker processes: proportional set sizes, summed, sampled
every 0.2 s):

1. write    a JSONL file of n synthetic samples, half math (a boxed answer, about 20 %
            wrong) and half instruction following (IFEval constraints), from the
            generators of `verify_math.py` and `verify_instruction.py`, and a reference
            file of real samples of both families (another seed)
2. import   `import --batch million FILE` and `import --reference`
3. verify   `verify --batch million` (math_answer and instruction, every core)
4. embed    `embed --reference`, then `embed_selection` over a random sample of the batch:
            embedding n texts on 2 CPUs takes hours, so its time for n is extrapolated
            from the measured rate and printed as such
5. dedup    `dedup --batch million --no-semantic`: exact and MinHash near-duplicates of
            all n, and copies of the reference set. Semantic dedup needs every sample
            embedded (see 4); the graph search it runs at 1M is `neighbours.py`'s
6. metrics  `diversity --batch million`: metrics against the reference set, which embed
            only the equal-size sample they compare
7. review   opening pages/review.py (AppTest) at the first sample; a spot-check of 120
            samples decided through `record_decision` (the reviewer agrees with the
            verifiers, which are right by construction here); bulk accept of the passed
            samples once the bound holds
8. export   `export --format parquet` of the accepted samples mixed with the reference

Not a test: nothing here asserts a time. Record the output in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.review import app_test_open  # noqa: E402
from benchmarks.verify_instruction import build_samples  # noqa: E402
from benchmarks.verify_math import make_samples  # noqa: E402
from curation.auth import Actor, Role  # noqa: E402

ADMIN = Actor("bench", Role.ADMIN)
BATCH = "million"
SPOT_CHECK = 120


def _pss(pid: int) -> int:
    """Proportional set size of a process in bytes: its private pages plus its share of
    pages it shares (forked workers share their parent's pages; summing RSS would count
    those once per process)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree_memory(root: int) -> int:
    """Memory of `root` and all its descendants (summed proportional set sizes)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _pss(pid)
        todo.extend(children.get(pid, ()))
    return total


class PeakMemory:
    """Samples the process tree's memory (PSS) in a thread; `peak` since `reset`."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak = 0
        self.overall = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.interval):
            now = _tree_memory(me)
            self.peak = max(self.peak, now)
            self.overall = max(self.overall, now)

    def reset(self) -> None:
        self.peak = _tree_memory(os.getpid())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


class Stages:
    def __init__(self) -> None:
        self.memory = PeakMemory()
        self.rows: list[tuple[str, float, int, str]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, str]]:
        note: dict[str, str] = {"note": ""}
        print(f"\n== {name} (load {load()})", flush=True)
        self.memory.reset()
        start = time.perf_counter()
        yield note
        seconds = time.perf_counter() - start
        self.rows.append((name, seconds, self.memory.peak, note["note"]))
        print(f"   {name}: {seconds:,.1f} s, peak PSS {self.memory.peak / 2**20:,.0f} MB  {note['note']}", flush=True)


def curation(workspace: str, *args: str) -> str:
    """Run `python -m curation ARGS` against the workspace; returns its stdout."""
    env = {**os.environ, "ASSAY_DATABASE_URL": workspace, "ASSAY_AUTH": "none", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "curation", *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"`curation {' '.join(args)}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def write_records(path: Path, n: int, seed: int, id_prefix: str) -> None:
    """n records with ids `id_prefix`0, 1, …: pieces of 50,000, each half math and half
    instruction, generated and written one piece at a time to bound memory."""
    piece = 50_000
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, n, piece):
            count = min(piece, n - start)
            math, _ = make_samples(count - count // 2, seed=rng.randrange(2**31))
            instruction = build_samples(count // 2, seed=rng.randrange(2**31))
            for k, sample in enumerate([*math, *instruction]):
                record = sample.to_dict()
                record["id"] = f"{id_prefix}{start + k}"
                handle.write(json.dumps(record) + "\n")


def extrapolated(seconds: float, done: int, n: int) -> str:
    hours = seconds / max(done, 1) * n / 3600
    return f"{done / seconds:,.1f} texts/s → {n:,} texts ≈ {hours:,.1f} h (extrapolated, not run)"


def run(args: argparse.Namespace, workdir: Path) -> Stages:
    n = args.samples
    workspace = f"sqlite:///{workdir / 'workspace.db'}"
    os.environ["ASSAY_DATABASE_URL"] = workspace
    os.environ["ASSAY_AUTH"] = "none"
    os.environ["ASSAY_VECTOR_DIR"] = str(workdir / "vectors")
    from sqlalchemy import func, select

    from curation.diversity.embed import get_embedder
    from curation.diversity.service import Selection, embed_selection, resolve_batch
    from curation.review.bulk import bulk_accept_passed
    from curation.review.decisions import record_decision
    from curation.review.queues import Queue, draw_spot_check, next_sample
    from curation.store import open_store, session_scope
    from curation.store.models import Sample

    stages = Stages()
    batch_file, reference_file = workdir / "batch.jsonl", workdir / "reference.jsonl"
    with stages.stage("write") as note:
        write_records(batch_file, n, seed=1, id_prefix="s")
        write_records(reference_file, args.reference, seed=2, id_prefix="r")
        note["note"] = f"{batch_file.stat().st_size / 2**20:,.0f} MB, {n:,} samples + {args.reference:,} reference"
    with stages.stage("import") as note:
        curation(workspace, "import", "--batch", BATCH, str(batch_file))
        curation(workspace, "import", "--batch", "reference", "--reference", str(reference_file))
        note["note"] = f"{n + args.reference:,} rows"
    with stages.stage("verify") as note:
        out = curation(workspace, "verify", "--batch", BATCH)
        overall = next((line.split() for line in out.splitlines() if line.split()[:1] == ["overall"]), [])
        note["note"] = "passed / failed / unjudged: " + " / ".join(overall[1:4]) if overall else out[-200:]
    engine = open_store(workspace)
    batch = resolve_batch(engine, BATCH)
    with stages.stage("embed") as note:
        started = time.perf_counter()
        curation(workspace, "embed", "--reference")
        reference_seconds = time.perf_counter() - started
        with session_scope(engine, write=False) as session:
            ids = list(session.scalars(select(Sample.id).where(Sample.batch_id == batch.id)))
        picked = random.Random(3).sample(ids, min(args.embed_sample, len(ids)))
        started = time.perf_counter()
        get_embedder().encode(["the model is loaded before the rate is measured"])
        load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        stats = embed_selection(engine, Selection(batch_ids=(batch.id,), sample_ids=tuple(picked)))
        sample_seconds = time.perf_counter() - started
        note["note"] = (
            f"reference {args.reference:,} in {reference_seconds:,.1f} s; model load {load_seconds:,.1f} s; batch sample "
            f"{stats.computed:,} in {sample_seconds:,.1f} s ({stats.backend}): "
            + extrapolated(sample_seconds, stats.computed, n)
        )
    with stages.stage("dedup") as note:
        out = curation(workspace, "dedup", "--batch", BATCH, "--no-semantic", "--json")
        summary = json.loads(out[out.index("{") :])
        note["note"] = json.dumps({k: summary.get(k) for k in ("findings", "minhash")})[:400]
    with stages.stage("metrics") as note:
        out = curation(workspace, "diversity", "--batch", BATCH, "--json")
        report = json.loads(out[out.index("{") :])
        note["note"] = (
            f"{report['n_compared']:,} of {report['n_synthetic']:,} compared with {report['n_reference']:,}; "
            f"{len(report.get('warnings', []))} warnings"
        )
    with stages.stage("review") as note:
        page_seconds = app_test_open(workspace)
        draw_spot_check(engine, ADMIN, batch.id, SPOT_CHECK, seed=1)
        trips = []
        while True:
            started = time.perf_counter()
            sample_id = next_sample(engine, ADMIN, Queue("spot-check", batch.id))
            if sample_id is None:
                break
            record_decision(engine, ADMIN, sample_id, "accept")
            trips.append(time.perf_counter() - started)
        started = time.perf_counter()
        accepted = bulk_accept_passed(engine, ADMIN, batch.id)
        bulk_seconds = time.perf_counter() - started
        trips.sort()
        note["note"] = (
            f"page open {page_seconds * 1000:,.0f} ms; {len(trips)} spot-check decisions, round trip p50 "
            f"{trips[len(trips) // 2] * 1000:.1f} ms; bulk accept {accepted.count:,} in {bulk_seconds:,.1f} s"
        )
    with stages.stage("export") as note:
        out_dir = workdir / "export"
        curation(workspace, "export", "--format", "parquet", "--out", str(out_dir), "--batch", BATCH, "--no-eval")
        manifest = json.loads((out_dir / "manifest.json").read_text())
        with session_scope(engine, write=False) as session:
            accepted_rows = session.scalar(
                select(func.count(Sample.id)).where(Sample.batch_id == batch.id, Sample.decision == "accept")
            )
        counts = manifest.get("counts", {})
        note["note"] = (
            f"{counts.get('rows', 0):,} rows ({counts.get('synthetic', 0):,} synthetic, {counts.get('real', 0):,} real, "
            f"dropped {json.dumps(counts.get('dropped', {}))}); {accepted_rows:,} accepted in the store"
        )
    engine.dispose()
    stages.memory.stop()
    return stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=2_000, help="real samples in the reference set")
    parser.add_argument("--embed-sample", type=int, default=2_000, help="batch samples embedded to measure the rate")
    parser.add_argument("--workdir", type=Path, default=None, help="where the workspace goes (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the workspace afterwards")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="assay-million-", dir=os.environ.get("BENCH_TMP")))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"{args.samples:,} samples; workspace in {workdir}; CPUs {os.cpu_count()}; {time.strftime('%Y-%m-%d %H:%M')}")
    started = time.perf_counter()
    try:
        stages = run(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - started
    print(f"\n{'stage':<9} {'seconds':>9} {'peak PSS MB':>12}  notes")
    for name, seconds, peak, text in stages.rows:
        print(f"{name:<9} {seconds:>9,.1f} {peak / 2**20:>12,.0f}  {text}")
    print(f"{'total':<9} {total:>9,.1f} {stages.memory.overall / 2**20:>12,.0f}  peak of the whole run; limit 24 GiB")
    print(f"load after: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
