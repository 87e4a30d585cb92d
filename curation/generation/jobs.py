"""The "generate" job kind: `start_job(engine, "generate", params)` with params as in
`curation.generation.params` (no secrets: the worker reads the API key from the
environment variable named in params["teacher"]["api_key_env"])."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from curation.auth.roles import Action
from curation.generation.params import GenerationParams
from curation.generation.run import check_can_continue, run_generation
from curation.jobs.registry import JobContext, batch_targets, job_kind
from curation.store.db import session_scope
from curation.store.models import Batch

DIED = (
    "the generation job ended without finishing (worker killed or crashed); "
    "resume it to request only what is missing"
)


def _cleanup(engine: Engine, params: dict[str, Any]) -> None:
    """After a failure, cancel or a dead worker: keep every committed response (a resume
    continues from them) and make sure the batch no longer says "generating"."""
    name = params.get("batch")
    if not name:
        return
    with session_scope(engine) as session:
        batch = session.scalar(select(Batch).where(Batch.name == name))
        if batch is not None and batch.status == "generating":
            batch.status = "failed"
            batch.stats = {**(batch.stats or {}), "stop_reason": DIED}


def _describe(params: dict[str, Any]) -> str:
    teacher = (params.get("teacher") or {}).get("kind", "simulated")
    who = (
        "simulated teacher" if teacher == "simulated" else (params.get("teacher") or {}).get("model", teacher)
    )
    return f"Generate {params.get('family', '?')} ({params.get('mode', 'solve')}) → {params.get('batch', '?')} [{who}]"


def _check(session: Session, params: dict[str, Any]) -> None:
    """Refuse, before the job exists, a start that cannot continue the batch it names."""
    if session.scalar(select(Batch.id).where(Batch.name == params.get("batch"))) is not None:
        check_can_continue(session, GenerationParams.from_dict(params))


@job_kind(
    "generate",
    cleanup=_cleanup,
    describe=_describe,
    targets=batch_targets,
    doing="generated",
    check=_check,
    action=Action.GENERATE,
)
def run_generate(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    return run_generation(ctx.engine, params, progress=ctx.progress, job_id=ctx.job_id)
