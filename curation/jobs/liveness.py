"""Which jobs are alive: the reaper, and the one check every start goes through.

A job row says "running" until its worker says otherwise, so a worker killed with
SIGKILL (or a machine that died) leaves a row that lies. `reap_dead_jobs` finds those
rows (on this host: the worker's pid and the kernel's start time of that pid; on
another host: a stale heartbeat), marks them failed with the reason and undoes their
partial work. `refuse_if_busy` reaps first and then refuses a start only for a job
that really is alive, naming its pid, host, last heartbeat and the command to cancel
it. `submit_job` calls it before it creates a row, so a refused start leaves nothing
behind, and no start path can forget to reap.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from curation.jobs.registry import JOB_KINDS, load_job_modules
from curation.store.db import session_scope
from curation.store.models import Job, as_utc, utcnow

ACTIVE_STATES = ("queued", "running")
#: A job on another host is declared dead after this long without a heartbeat.
STALE_AFTER = timedelta(seconds=60)
#: A queued job that no worker picked up within this time is declared failed.
UNCLAIMED_AFTER = timedelta(seconds=120)
#: Serialises "check for a live job, then create one" on PostgreSQL (SQLite writers
#: already take the database lock up front).
SUBMIT_LOCK_KEY = 0x61737361  # "assa"
CANCEL_COMMAND = "python -m curation cancel {job_id}"


class JobBusy(ValueError):
    """A start refused because a live job already works on the same thing."""


def process_start_token(pid: int) -> str | None:
    """The kernel's start time of `pid`: tells a live worker from a recycled pid.
    None when the process does not exist or is a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def process_identity(pid: int) -> dict[str, Any]:
    """The columns that tie a job row to a live process: pid, its start time, this host."""
    return {"pid": pid, "pid_start": process_start_token(pid), "host": socket.gethostname()}


def _death_reason(job: Job, host: str, now: datetime) -> str | None:
    """Why the active job `job` cannot be alive any more, or None if it may be."""
    gone = job.host == host and job.pid is not None and process_start_token(job.pid) != job.pid_start
    if job.state == "queued":
        if gone:
            return f"process {job.pid} that was to run the job exited before it started (killed or crashed)"
        return "no worker picked the job up" if as_utc(job.created_at) < now - UNCLAIMED_AFTER else None
    if gone:
        return f"worker process {job.pid} exited without finishing (killed or crashed)"
    if job.host == host and job.pid is not None:
        return None
    if job.heartbeat_at is None or as_utc(job.heartbeat_at) < now - STALE_AFTER:
        return f"no heartbeat from worker on {job.host} since {job.heartbeat_at}"
    return None


def reap_dead_jobs(engine: Engine) -> list[int]:
    """Mark jobs whose worker is gone as failed (with the reason) and undo their partial work."""
    load_job_modules()
    host = socket.gethostname()
    now = utcnow()
    with session_scope(engine, write=False) as session:
        jobs = session.scalars(select(Job).where(Job.state.in_(ACTIVE_STATES))).all()
        dead = [
            (job.id, job.kind, dict(job.params), reason)
            for job in jobs
            if (reason := _death_reason(job, host, now))
        ]
    reaped = []
    for job_id, kind, params, reason in dead:
        with session_scope(engine) as session:
            changed = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state.in_(ACTIVE_STATES))
                .values(state="failed", error=reason, message="failed", finished_at=utcnow())
            ).rowcount
        if changed:
            JOB_KINDS.get(kind).undo(engine, params)
            reaped.append(job_id)
    return reaped


def _live_conflicts(
    session: Session, kind: str, params: dict[str, Any], exclude: int | None
) -> Iterator[tuple[str, Job]]:
    """(target, job) for each active job of `kind` working on a target `params` names too."""
    job_kind = JOB_KINDS.get(kind)
    wanted = set(job_kind.targets(params))
    if not wanted:
        return
    for job in session.scalars(
        select(Job).where(Job.kind == kind, Job.state.in_(ACTIVE_STATES)).order_by(Job.id)
    ):
        if job.id == exclude:
            continue
        for target in job_kind.targets(job.params or {}):
            if target in wanted:
                yield target, job


def busy_message(target: str, doing: str, job: Job) -> str:
    """`target is being <doing> by job N`, with where it runs and how to cancel it."""
    if job.state == "queued":
        where = f"queued since {as_utc(job.created_at):%Y-%m-%d %H:%M:%S} UTC, waiting for a worker"
    else:
        beat = "no heartbeat yet"
        if job.heartbeat_at is not None:
            beat_at = as_utc(job.heartbeat_at)
            ago = max(0.0, (utcnow() - beat_at).total_seconds())
            beat = f"last heartbeat {ago:.0f}s ago at {beat_at:%Y-%m-%d %H:%M:%S} UTC"
        where = f"pid {job.pid} on host {job.host}, {beat}"
    return (
        f"{target} is being {doing} by job {job.id} ({where}); wait for it to finish "
        f"or cancel it with `{CANCEL_COMMAND.format(job_id=job.id)}`"
    )


def check_not_busy(
    session: Session, kind: str, params: dict[str, Any], *, exclude: int | None = None
) -> None:
    """Raise JobBusy if an active job of `kind` works on what `params` names. Call
    `reap_dead_jobs` first (as `refuse_if_busy` does) so a dead job does not count."""
    for target, job in _live_conflicts(session, kind, params, exclude):
        raise JobBusy(busy_message(target, JOB_KINDS.get(kind).doing, job))


def lock_submissions(session: Session) -> None:
    """Hold the submit lock until `session` ends, so two starts cannot both see "free"."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SUBMIT_LOCK_KEY})


def refuse_if_busy(engine: Engine, kind: str, params: dict[str, Any], *, exclude: int | None = None) -> None:
    """Reap dead jobs, then raise JobBusy if a live job of `kind` works on what `params`
    names (e.g. the same batch). For work that runs without a job row of its own (a
    command run in this process) and for a job re-checking itself (`exclude` its id)."""
    reap_dead_jobs(engine)
    with session_scope(engine, write=False) as session:
        check_not_busy(session, kind, params, exclude=exclude)
