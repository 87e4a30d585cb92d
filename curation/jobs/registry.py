"""Job kinds and the context a job function runs with."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from curation.auth.roles import Action, Actor, Role
from curation.features import feature_modules
from curation.registry import Registry
from curation.store.db import session_scope
from curation.store.models import Job, utcnow


class JobCancelled(Exception):
    """Raised inside a job when a user asked to cancel it."""


class JobContext:
    """Handed to a job function: where to report progress and check for cancellation.

    Progress writes are throttled (at most every `min_interval` seconds) so a job
    reporting every row does not hammer the store."""

    def __init__(
        self,
        engine: Engine,
        job_id: int,
        params: dict[str, Any],
        min_interval: float = 0.5,
        actor: Actor | None = None,
    ):
        self.engine = engine
        #: Who the job acts as: its submitter, whose role was checked when it was submitted
        #: (`submit_job`), so the job's own write calls pass.
        self.actor = actor or Actor(f"job {job_id}", Role.ADMIN)
        self.job_id = job_id
        self.params = params
        self.min_interval = min_interval
        self._last_write = 0.0
        self._cancel_requested = False

    def progress(
        self,
        done: int,
        total: int | None = None,
        message: str | None = None,
        counters: dict[str, Any] | None = None,
        force: bool = False,
    ) -> None:
        """Record progress; raises JobCancelled if a cancel was requested."""
        now = time.monotonic()
        final = total is not None and done >= total
        if not (force or final) and now - self._last_write < self.min_interval:
            return
        self._last_write = now
        values: dict[str, Any] = {"progress_done": done, "heartbeat_at": utcnow()}
        if total is not None:
            values["progress_total"] = total
        if message is not None:
            values["message"] = message
        if counters is not None:
            values["counters"] = counters
        with session_scope(self.engine) as session:
            session.execute(update(Job).where(Job.id == self.job_id).values(**values))
            self._cancel_requested = bool(
                session.get(Job, self.job_id, populate_existing=True).cancel_requested
            )
        if self._cancel_requested:
            raise JobCancelled()

    def check_cancelled(self) -> None:
        """Poll the store for a cancel request (cheap enough for every chunk of work)."""
        with session_scope(self.engine, write=False) as session:
            job = session.get(Job, self.job_id)
            if job is not None and job.cancel_requested:
                raise JobCancelled()


def _no_targets(params: dict[str, Any]) -> tuple[str, ...]:
    return ()


def batch_targets(params: dict[str, Any]) -> list[str]:
    """The batches a job works on (`params["batch"]` or `params["batches"]`), as targets."""
    names = [params["batch"]] if params.get("batch") else list(params.get("batches") or [])
    return [f"batch {name!r}" for name in names]


@dataclass(frozen=True)
class JobKind:
    name: str
    run: Callable[[JobContext, dict[str, Any]], dict[str, Any] | None]
    #: Called after a job failed, was cancelled or its worker died, to undo partial work.
    cleanup: Callable[[Engine, dict[str, Any]], None] | None = None
    describe: Callable[[dict[str, Any]], str] | None = None
    #: What a job works on, named for people ("batch 'k1'"): two live jobs of this kind
    #: must not share one (a start is refused while another job holds it).
    targets: Callable[[dict[str, Any]], Iterable[str]] = _no_targets
    #: The past participle for "batch 'k1' is being <doing> by job 3".
    doing: str = "worked on"
    #: Refuses a start that cannot go ahead, by raising ValueError, before its job row is
    #: created (so a refused start leaves no failed job behind).
    check: Callable[[Session, dict[str, Any]], None] | None = None
    #: What the submitter's role must allow (checked by `submit_job`).
    action: Action = Action.MANAGE_JOBS

    def undo(self, engine: Engine, params: dict[str, Any]) -> None:
        """Undo a failed, cancelled or dead job's partial work (the kind's `cleanup`)."""
        if self.cleanup is not None:
            self.cleanup(engine, params)


JOB_KINDS: Registry[JobKind] = Registry("job kind")


def job_kind(
    name: str,
    cleanup: Callable[[Engine, dict[str, Any]], None] | None = None,
    describe: Callable[[dict[str, Any]], str] | None = None,
    targets: Callable[[dict[str, Any]], Iterable[str]] = _no_targets,
    doing: str = "worked on",
    check: Callable[[Session, dict[str, Any]], None] | None = None,
    action: Action = Action.MANAGE_JOBS,
) -> Callable[[Callable], Callable]:
    """Register a function `run(ctx, params) -> result dict` as a job kind; submitting
    one needs a role that allows `action`."""

    def decorate(func: Callable) -> Callable:
        kind = JobKind(
            name=name,
            run=func,
            cleanup=cleanup,
            describe=describe,
            targets=targets,
            doing=doing,
            check=check,
            action=action,
        )
        JOB_KINDS.register(name)(kind)
        return func

    return decorate


def load_job_modules() -> None:
    """Register every feature's job kinds (the worker does this before running a job)."""
    feature_modules("jobs")
