"""Review figures at 100k and 1M samples in a SQLite store:

* one accept/reject round trip on the server (record_decision + fetching the next
  sample of the queue), p50 / p95 over a few hundred decisions, per queue;
* opening the review page at the first sample: the library calls the page makes,
  and an AppTest run of pages/review.py;
* one-off costs: drawing the spot-check pool, bulk accept / reject and their undo,
  the review-stats summary.

    .venv/bin/python benchmarks/review.py [--sizes 100000 1000000] [--decisions 300] [--rebuild]

Each store is built once into /tmp (samples with three verdicts each, bulk
inserted) and copied before every run, so runs start from the same state.
Prints a table; record it in BENCHMARKS.md. Not a test: nothing here asserts a time."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from curation.auth import Actor, Role  # noqa: E402
from curation.review.bulk import bulk_accept_passed, bulk_reject_failures, rejectable_reasons, undo_bulk  # noqa: E402
from curation.review.context import neighbour_previews, review_card  # noqa: E402
from curation.review.decisions import record_decision  # noqa: E402
from curation.review.queues import (  # noqa: E402
    Queue,
    available_queues,
    draw_spot_check,
    next_sample,
    queue_remaining,
    review_batches,
)
from curation.review.sampling import acceptance_summary  # noqa: E402
from curation.review.stats import review_stats  # noqa: E402
from curation.store import open_store, session_scope  # noqa: E402
from curation.store.db import dispose_engines  # noqa: E402
from curation.store.models import Batch  # noqa: E402
from curation.testing.review_batches import insert_review_batch, mixed_rows  # noqa: E402

#: Benchmarks act as an admin.
ADMIN = Actor("bench", Role.ADMIN)

QUEUES = ("disagreement", "failures", "uncertain", "spot-check", "cluster", "undecided")
rows_out: list[tuple[str, str]] = []
size_label = [""]


def report(label: str, value: str) -> None:
    rows_out.append((f"{size_label[0]:>5}  {label}", value))
    print(f"  {label:<66} {value:>16}", flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def base_store(n: int, rebuild: bool) -> Path:
    """/tmp/assay-review-bench-N.db with one ready batch of n samples (built once)."""
    path = Path(f"/tmp/assay-review-bench-{n}.db")
    url = f"sqlite:///{path}"
    if path.exists() and not rebuild:
        engine = open_store(url)
        with session_scope(engine, write=False) as session:
            ready = session.scalar(select(Batch.id).where(Batch.name == "bench", Batch.status == "ready"))
        dispose_engines()
        if ready is not None:
            return path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = open_store(url)
    start = time.perf_counter()
    insert_review_batch(engine, "bench", mixed_rows(n, seed=1, clusters=50))
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.exec_driver_sql("ANALYZE")
    dispose_engines()
    report(f"build: insert {n:,} samples + {3 * n:,} verdicts", f"{time.perf_counter() - start:,.1f} s")
    return path


def working_copy(path: Path) -> str:
    copy = path.with_name(path.stem + "-run.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(path, copy)
    return f"sqlite:///{copy}"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def page_open(engine: Any, batch_id: int, reviewer: str) -> int | None:
    """The library calls pages/review.py makes to show the first sample of the default queue."""
    review_batches(engine)
    available_queues(engine, batch_id)
    queue = Queue("disagreement", batch_id)
    acceptance_summary(engine, batch_id, with_population=False)
    sample_id = next_sample(engine, Actor(reviewer, Role.ADMIN), queue)
    if sample_id is not None:
        review_card(engine, sample_id)
        neighbour_previews(engine, sample_id)
        queue_remaining(engine, queue, reviewer)
    return sample_id


def round_trips(engine: Any, queue: Queue, reviewer: str, decisions: int) -> list[float]:
    """record_decision + next_sample, as the page's accept / reject callback does."""
    times = []
    current = next_sample(engine, Actor(reviewer, Role.ADMIN), queue)
    for i in range(decisions):
        if current is None:
            break
        action = "accept" if queue.kind == "spot-check" or i % 3 else "reject"
        start = time.perf_counter()
        record_decision(engine, Actor(reviewer, Role.ADMIN), current, action)
        current = next_sample(engine, Actor(reviewer, Role.ADMIN), queue, after=current)
        times.append(time.perf_counter() - start)
    return times


def app_test_open(url: str) -> float:
    os.environ["ASSAY_DATABASE_URL"] = url
    os.environ["ASSAY_AUTH"] = "none"  # the page as the demo opens it, without a sign-in
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    app.session_state["reviewer_name"] = "page"
    app.run()
    start = time.perf_counter()
    app.switch_page("pages/review.py").run()
    elapsed = time.perf_counter() - start
    assert not app.exception, [e.value for e in app.exception]
    assert any(h.value.startswith("Sample ") for h in app.subheader)
    return elapsed


def bench(n: int, decisions: int, rebuild: bool) -> None:
    print(f"\n{n:,} samples", flush=True)
    size_label[0] = f"{n // 1000:,}k" if n < 1_000_000 else f"{n // 1_000_000:,}M"
    url = working_copy(base_store(n, rebuild))
    engine = open_store(url)
    with session_scope(engine, write=False) as session:
        batch_id = session.scalar(select(Batch.id).where(Batch.name == "bench"))

    cold, _ = timed(lambda: page_open(engine, batch_id, "first"))
    warm = [timed(lambda: page_open(engine, batch_id, "first"))[0] for _ in range(5)]
    report("page open: library calls to the first sample (cold)", ms(cold))
    report("page open: library calls to the first sample (warm median)", ms(statistics.median(warm)))
    report("page open: AppTest run of pages/review.py", ms(app_test_open(url)))

    elapsed, pool = timed(lambda: draw_spot_check(engine, ADMIN, batch_id, decisions + 20, seed=1))
    report(f"draw the spot-check pool ({pool.size} of the passed set)", ms(elapsed))
    for kind in QUEUES:
        queue = Queue(kind, batch_id, cluster="c7") if kind == "cluster" else Queue(kind, batch_id)
        times = round_trips(engine, queue, f"r-{kind}", decisions)
        report(
            f"round trip, {kind} queue (p50 / p95, n={len(times)})",
            f"{percentile(times, 0.5) * 1000:.1f} / {percentile(times, 0.95) * 1000:.1f} ms",
        )

    elapsed, summary = timed(lambda: acceptance_summary(engine, batch_id))
    report(f"acceptance summary (bound {summary.upper_bound:.2%}, holds={summary.holds})", ms(elapsed))
    elapsed, _ = timed(lambda: review_stats(engine, batch_id))
    report("review-stats: everything for the batch", ms(elapsed))
    elapsed, accepted = timed(lambda: bulk_accept_passed(engine, Actor("bulk", Role.ADMIN), batch_id))
    report(f"bulk accept of the passed set ({accepted.count:,} samples)", f"{elapsed:,.2f} s")
    elapsed, undone = timed(lambda: undo_bulk(engine, Actor("bulk", Role.ADMIN), accepted.bulk_event_id))
    report(f"undo of that bulk event ({undone.count:,} samples)", f"{elapsed:,.2f} s")
    verifier, reason, _ = next(r for r in rejectable_reasons(engine, batch_id) if r[0] == "checker")
    elapsed, rejected = timed(lambda: bulk_reject_failures(engine, Actor("bulk", Role.ADMIN), batch_id, verifier, reason))
    report(f"bulk reject of one failure reason ({rejected.count:,} samples)", f"{elapsed:,.2f} s")
    dispose_engines()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the stores under /tmp")
    args = parser.parse_args()
    for n in args.sizes:
        bench(n, args.decisions, args.rebuild)
    print(f"\n{'size  measure':<75} {'value':>16}")
    for label, value in rows_out:
        print(f"{label:<75} {value:>16}")


if __name__ == "__main__":
    main()
