"""Core subcommands: import, jobs, cancel, resume, worker, demo (export: `curation.export_cli`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sqlalchemy import Engine


def _print_progress(done: int, total: int | None, message: str) -> None:
    if sys.stderr.isatty():
        print(f"\r{message:<70}", end="", file=sys.stderr, flush=True)
    elif total is None or done == total:
        print(message, file=sys.stderr)


def cmd_import(args: argparse.Namespace, engine: Engine) -> int:
    from curation.importer import import_file

    origin = "real" if args.reference else "eval" if args.eval else "synthetic"
    result = import_file(engine, args.file, args.batch, origin=origin, progress=_print_progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    families = ", ".join(f"{k}: {v}" for k, v in sorted(result["families"].items()))
    print(f"imported {result['imported']} records into {origin} batch {result['batch']!r} ({families})")
    return 0


def _job_line(job: Any) -> str:
    progress = f"{job.progress_done}/{job.progress_total}" if job.progress_total else str(job.progress_done)
    detail = job.error or job.message
    return f"{job.id:>5}  {job.kind:<9} {job.state:<10} {progress:>13}  {job.title}  {detail or ''}".rstrip()


def cmd_jobs(args: argparse.Namespace, engine: Engine) -> int:
    from curation.jobs import list_jobs

    jobs = list_jobs(engine, limit=args.limit)
    print(f"{'id':>5}  {'kind':<9} {'state':<10} {'progress':>13}  title")
    for job in jobs:
        print(_job_line(job))
    return 0


def cmd_cancel(args: argparse.Namespace, engine: Engine) -> int:
    from curation.jobs import cancel_job

    cancel_job(engine, args.job_id)
    print(f"asked job {args.job_id} to stop")
    return 0


def cmd_resume(args: argparse.Namespace, engine: Engine) -> int:
    from curation.jobs import resume_job, wait_for_job

    job_id = resume_job(engine, args.job_id, created_by="cli")
    print(f"started job {job_id} (resuming {args.job_id})")
    if args.wait:
        job = wait_for_job(engine, job_id, timeout=24 * 3600)
        print(_job_line(job))
        return 0 if job.state == "succeeded" else 1
    return 0


def cmd_worker(args: argparse.Namespace, engine: Engine) -> int:
    from curation.jobs import run_job

    job = run_job(engine, args.job_id)
    return 0 if job.state in ("succeeded", "cancelled") else 1


def cmd_demo(args: argparse.Namespace, engine: Engine) -> int:
    from curation.demo import ensure_demo_workspace

    created = ensure_demo_workspace(engine, force=args.force, say=lambda message: print(f"demo: {message}", file=sys.stderr))
    print("demo workspace: " + (", ".join(created) if created else "already populated, nothing to do"))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("import", help="import a JSONL/CSV/Parquet file as a new batch (all or nothing)")
    p.add_argument("file")
    p.add_argument("--batch", required=True, help="name of the new batch")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--reference", action="store_true", help="the file is real human data (the reference set)")
    group.add_argument("--eval", action="store_true", help="the file is an evaluation set (for decontamination)")
    p.set_defaults(func=cmd_import)

    p = subparsers.add_parser("jobs", help="list background jobs (marks dead workers as failed)")
    p.add_argument("--limit", type=int, default=30)
    p.set_defaults(func=cmd_jobs)

    p = subparsers.add_parser("cancel", help="ask a running job to stop")
    p.add_argument("job_id", type=int)
    p.set_defaults(func=cmd_cancel)

    p = subparsers.add_parser("resume", help="rerun a failed or cancelled job; it only does what is missing")
    p.add_argument("job_id", type=int)
    p.add_argument("--wait", action="store_true", help="wait for it to finish")
    p.set_defaults(func=cmd_resume)

    p = subparsers.add_parser("worker", help="(internal) run one queued job in this process")
    p.add_argument("job_id", type=int)
    p.set_defaults(func=cmd_worker)

    p = subparsers.add_parser("demo", help="fill an empty workspace with the demo data")
    p.add_argument("--force", action="store_true", help="add the demo batches even if the workspace has data")
    p.set_defaults(func=cmd_demo)
