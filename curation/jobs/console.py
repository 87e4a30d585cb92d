"""Progress on the command line: a callback for library functions, and running a job
in this process (for the CLI) while printing its progress to stderr."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from curation.jobs.runner import JobView, get_job, run_job


def print_progress(done: int, total: int | None, message: str) -> None:
    """Progress callback `(done, total, message)` for commands: at a terminal one line,
    rewritten in place (counts first); in a log or a pipe only the final line."""
    if sys.stderr.isatty():
        line = f"{done:,}/{total:,}  {message}" if total else message
        print(f"\r{line:<78}", end="", file=sys.stderr, flush=True)
    elif total is None or done >= total:
        print(message, file=sys.stderr, flush=True)


def end_progress() -> None:
    """End the rewritten progress line (at a terminal) before printing results."""
    if sys.stderr.isatty():
        print(file=sys.stderr)


def run_job_with_progress(
    engine: Engine, job_id: int, line: Callable[[JobView], str] | None = None
) -> JobView:
    """Run the queued job `job_id` here; once a second print `line(job)` (default: its
    message) when it changed, on one rewritten line at a terminal. A failed job's
    error is printed too. Returns the finished job."""
    describe = line or (lambda job: job.message)
    stop = threading.Event()
    interactive = sys.stderr.isatty()

    def report() -> None:
        last = ""
        while not stop.wait(1.0):
            try:
                text = describe(get_job(engine, job_id))
            except Exception:  # noqa: BLE001 - a busy store just skips one progress line
                continue
            if text and text != last:
                last = text
                print(
                    ("\r" if interactive else "") + text,
                    end="" if interactive else "\n",
                    file=sys.stderr,
                    flush=True,
                )

    printer = threading.Thread(target=report, daemon=True)
    printer.start()
    try:
        job = run_job(engine, job_id)
    finally:
        stop.set()
        printer.join(2)
        if interactive:
            end_progress()
    if job.state != "succeeded":
        print(f"job {job_id} {job.state}: {job.error or job.message}", file=sys.stderr)
    return job
