"""Start, run, watch, cancel and resume jobs.

A job row is created by `submit_job`; `start_job` also spawns a worker process
(`python -m curation worker ID`) in its own session, so it survives a browser
refresh or the Streamlit script being rerun. The worker heartbeats; the reaper
marks a running job whose process is gone as failed and runs the kind's cleanup,
so nothing is left half-done and silent (`curation.jobs.liveness`). Every start
reaps first and is refused, before any row is created, while a live job of the same
kind works on the same thing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import Engine, select, update

from curation.auth.roles import Action, Actor, Role, require, writes
from curation.config import PROJECT_ROOT
from curation.jobs.liveness import (
    ACTIVE_STATES,
    check_not_busy,
    lock_submissions,
    process_identity,
    reap_dead_jobs,
)
from curation.jobs.registry import JOB_KINDS, JobCancelled, JobContext, load_job_modules
from curation.store.db import session_scope
from curation.store.models import Job, utcnow

HEARTBEAT_SECONDS = 2.0
LOG_DIR = PROJECT_ROOT / "data" / "logs"


@dataclass(frozen=True)
class JobView:
    """A detached, read-only copy of a job row for display."""

    id: int
    kind: str
    title: str
    state: str
    progress_done: int
    progress_total: int | None
    message: str
    counters: dict[str, Any]
    result: dict[str, Any]
    error: str | None
    params: dict[str, Any]
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    resumed_from: int | None
    host: str | None
    pid: int | None
    heartbeat_at: datetime | None

    @property
    def fraction(self) -> float | None:
        if not self.progress_total:
            return None
        return min(1.0, self.progress_done / self.progress_total)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


#: JSON columns: copied, so a view never shares a dict with the session's row.
_COPIED = ("counters", "result", "params")


def _view(job: Job) -> JobView:
    values = {field.name: getattr(job, field.name) for field in fields(JobView)}
    return JobView(**{**values, **{name: dict(values[name] or {}) for name in _COPIED}})


class JobDetails(TypedDict, total=False):
    """Who and what a new job row records besides its kind and parameters."""

    title: str
    created_by: str
    resumed_from: int | None


@writes(Action.MANAGE_JOBS)
def submit_job(
    engine: Engine, actor: Actor, kind: str, params: dict[str, Any], **details: Unpack[JobDetails]
) -> int:
    """Create a queued job row, owned by this process until a worker claims it (so a
    job whose owner dies before it starts is reaped at once, not after minutes).

    `actor`'s role must allow the kind's action too (generate, import, verify, ...): the
    job's worker then runs without further checks. `created_by` defaults to their name.

    Dead jobs are reaped first (undoing their partial work); while a live job of the same
    kind works on the same thing (e.g. the same batch), raises JobBusy, and when the
    kind's `check` refuses the start, its ValueError: either way nothing is created."""
    load_job_modules()
    job_kind = JOB_KINDS.get(kind)
    require(actor, job_kind.action)  # before the reaper writes anything
    reap_dead_jobs(engine)
    title = details.get("title") or (job_kind.describe(params) if job_kind.describe is not None else "")
    with session_scope(engine) as session:
        lock_submissions(session)
        check_not_busy(session, kind, params)
        if job_kind.check is not None:
            job_kind.check(session, params)
        job = Job(
            kind=kind,
            params=params,
            title=title or kind,
            created_by=details.get("created_by") or actor.name,
            resumed_from=details.get("resumed_from"),
            state="queued",
            **process_identity(os.getpid()),
        )
        session.add(job)
        session.flush()
        return job.id


@writes(Action.MANAGE_JOBS)
def start_job(
    engine: Engine,
    actor: Actor,
    kind: str,
    params: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    **details: Unpack[JobDetails],
) -> int:
    """Create a job and spawn its worker process. Returns the job id at once.

    `env` adds variables to the worker's environment only (e.g. an API key typed
    into the page): never stored with the job, never visible to other workers."""
    job_id = submit_job(engine, actor, kind, params, **details)
    spawn_worker(engine, job_id, env=env)
    return job_id


def spawn_worker(engine: Engine, job_id: int, *, env: dict[str, str] | None = None) -> subprocess.Popen:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = open(LOG_DIR / f"job-{job_id}.log", "ab")  # noqa: SIM115 - handed to the child
    url = engine.url.render_as_string(hide_password=False)
    worker_env = {**os.environ, **(env or {})}
    worker_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(PROJECT_ROOT), worker_env.get("PYTHONPATH")])
    )
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "curation", "--db", url, "worker", str(job_id)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(PROJECT_ROOT),
            env=worker_env,
            start_new_session=True,
        )
    finally:
        log.close()
    # The worker owns the queued job from now on: it lives on when this process dies.
    with session_scope(engine) as session:
        session.execute(
            update(Job).where(Job.id == job_id, Job.state == "queued").values(**process_identity(worker.pid))
        )
    return worker


def _heartbeat(engine: Engine, job_id: int, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            with session_scope(engine) as session:
                session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow()))
        except Exception:  # noqa: BLE001 - a missed heartbeat is not fatal; the next one retries
            continue


def _claim(engine: Engine, job_id: int) -> dict[str, Any] | None:
    """Mark the job running by this process; None if it is not queued any more."""
    pid = os.getpid()
    with session_scope(engine) as session:
        claimed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "queued")
            .values(
                state="running",
                **process_identity(pid),
                started_at=utcnow(),
                heartbeat_at=utcnow(),
            )
        ).rowcount
        if not claimed:
            return None
        return dict(session.get(Job, job_id).params)


def _finish(engine: Engine, job_id: int, **values: Any) -> None:
    with session_scope(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(finished_at=utcnow(), **values))


def run_job(engine: Engine, job_id: int, *, echo: bool = False) -> JobView:
    """Run a queued job in this process (the worker's body; also used by the CLI)."""
    load_job_modules()
    params = _claim(engine, job_id)
    if params is None:
        return get_job(engine, job_id)
    with session_scope(engine, write=False) as session:
        kind = JOB_KINDS.get(session.get(Job, job_id).kind)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(engine, job_id, stop), daemon=True)
    beat.start()
    ctx = JobContext(engine, job_id, params, min_interval=0.0 if echo else 0.5, actor=_job_actor(engine, job_id))
    try:
        result = kind.run(ctx, params) or {}
    except JobCancelled:
        kind.undo(engine, params)
        _finish(engine, job_id, state="cancelled", message="cancelled by user")
    except BaseException as exc:  # noqa: BLE001 - every failure must be recorded
        kind.undo(engine, params)
        detail = _describe_failure(exc)
        _finish(engine, job_id, state="failed", error=detail, message="failed")
        if echo:
            traceback.print_exc()
        if not isinstance(exc, Exception):
            raise
    else:
        _finish(engine, job_id, state="succeeded", result=result)
    finally:
        stop.set()
    return get_job(engine, job_id)


def _job_actor(engine: Engine, job_id: int) -> Actor:
    """Who a worker acts as: the job's submitter, with the authority `submit_job` checked."""
    with session_scope(engine, write=False) as session:
        name = (session.get(Job, job_id).created_by or "").strip()
    return Actor(name or f"job {job_id}", Role.ADMIN)


def _describe_failure(exc: BaseException) -> str:
    """User errors (bad input) read as plain sentences; anything else keeps its type."""
    if isinstance(exc, ValueError | KeyError | FileNotFoundError) and exc.args:
        return str(exc.args[0]) if isinstance(exc, KeyError) else str(exc)
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def get_job(engine: Engine, job_id: int) -> JobView:
    with session_scope(engine, write=False) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise KeyError(f"no job {job_id}")
        return _view(job)


def list_jobs(engine: Engine, limit: int = 50, kind: str | None = None) -> list[JobView]:
    reap_dead_jobs(engine)
    with session_scope(engine, write=False) as session:
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if kind:
            query = query.where(Job.kind == kind)
        return [_view(job) for job in session.scalars(query)]


@writes(Action.MANAGE_JOBS)
def cancel_job(engine: Engine, actor: Actor, job_id: int) -> None:
    """Ask a job to stop; a queued job is cancelled at once."""
    with session_scope(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "queued")
            .values(state="cancelled", message="cancelled before start", finished_at=utcnow())
        )


@writes(Action.MANAGE_JOBS)
def resume_job(
    engine: Engine, actor: Actor, job_id: int, *, created_by: str = "", env: dict[str, str] | None = None
) -> int:
    """Start a new job with the same kind and parameters as a failed or cancelled one.
    Job kinds are written so that a rerun only does what is missing. Dead jobs are
    reaped first, so a job whose worker was just killed can be resumed at once."""
    reap_dead_jobs(engine)
    old = get_job(engine, job_id)
    if old.active:
        raise ValueError(f"job {job_id} is still {old.state}")
    return start_job(
        engine, actor, old.kind, old.params, title=old.title, created_by=created_by, resumed_from=job_id, env=env
    )


def wait_for_job(engine: Engine, job_id: int, timeout: float = 600.0, poll: float = 0.2) -> JobView:
    """Block until the job is no longer active (for the CLI and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        reap_dead_jobs(engine)
        job = get_job(engine, job_id)
        if not job.active:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job.state} after {timeout:.0f}s")
        time.sleep(poll)
