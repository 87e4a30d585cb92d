"""`jobs`, `cancel`, `resume` and `worker`: background jobs from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import Engine

from curation.auth import command_actor
from curation.jobs.runner import cancel_job, list_jobs, resume_job, run_job, wait_for_job


def _job_line(job: Any) -> str:
    progress = f"{job.progress_done}/{job.progress_total}" if job.progress_total else str(job.progress_done)
    detail = job.error or job.message
    return f"{job.id:>5}  {job.kind:<9} {job.state:<10} {progress:>13}  {job.title}  {detail or ''}".rstrip()


def cmd_jobs(args: argparse.Namespace, engine: Engine) -> int:
    jobs = list_jobs(engine, limit=args.limit)
    print(f"{'id':>5}  {'kind':<9} {'state':<10} {'progress':>13}  title")
    for job in jobs:
        print(_job_line(job))
    return 0


def cmd_cancel(args: argparse.Namespace, engine: Engine) -> int:
    cancel_job(engine, command_actor(args, engine), args.job_id)
    print(f"asked job {args.job_id} to stop")
    return 0


def cmd_resume(args: argparse.Namespace, engine: Engine) -> int:
    job_id = resume_job(engine, command_actor(args, engine), args.job_id)
    print(f"started job {job_id} (resuming {args.job_id})")
    if args.wait:
        job = wait_for_job(engine, job_id, timeout=24 * 3600)
        print(_job_line(job))
        return 0 if job.state == "succeeded" else 1
    return 0


def cmd_worker(args: argparse.Namespace, engine: Engine) -> int:
    job = run_job(engine, args.job_id)
    return 0 if job.state in ("succeeded", "cancelled") else 1


def register(subparsers: argparse._SubParsersAction) -> None:
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
