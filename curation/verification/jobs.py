"""The "verify" job kind: `start_verification(engine, batches=[...])`, or
`start_job(engine, "verify", params)` with params as in `curation.verification.runner`.

Nothing needs undoing after a failure, a cancel or a dead worker: every committed
chunk holds finished verdicts, and a resumed job only does what is missing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from curation.auth.roles import Action, Actor, writes
from curation.executors import ExecutorChoice
from curation.jobs import start_job
from curation.jobs.registry import JobContext, batch_targets, job_kind
from curation.verification.runner import VerifyParams, plan_verification, run_verification


def describe(params: dict[str, Any]) -> str:
    batches = params.get("batches") or []
    what = ", ".join(batches[:3]) + (f" +{len(batches) - 3}" if len(batches) > 3 else "")
    if not what:
        what = f"{len(params['sample_ids'])} samples" if params.get("sample_ids") else "all synthetic batches"
    verifiers = params.get("verifiers")
    title = f"Verify {what}" + (f" [{', '.join(verifiers)}]" if verifiers else "")
    return title + (" (re-verify)" if params.get("reverify") else "")


@job_kind("verify", describe=describe, targets=batch_targets, doing="verified", action=Action.VERIFY)
def run_verify(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    return run_verification(ctx.engine, params, progress=ctx.progress, job_id=ctx.job_id)


@writes(Action.VERIFY)
def start_verification(
    engine: Engine,
    actor: Actor,
    batches: list[str] | None = None,
    *,
    verifiers: list[str] | None = None,
    jobs: int | None = None,
    reverify: bool = False,
    sample_ids: list[int] | None = None,
    families: list[str] | None = None,
    judge: dict[str, Any] | None = None,
    executor: ExecutorChoice | None = None,
    created_by: str = "",
) -> int:
    """Validate the parameters, then start a background "verify" job; returns its id."""
    params = VerifyParams(
        batches=list(batches or []),
        sample_ids=list(sample_ids or []),
        families=list(families or []),
        verifiers=list(verifiers) if verifiers else None,
        jobs=jobs,
        reverify=reverify,
        judge=judge,
        **(executor or ExecutorChoice()).to_params(),
    )
    plan_verification(params)
    return start_job(engine, actor, "verify", params.to_dict(), created_by=created_by)
