"""Background job kinds: "embed", "dedup" and "diversity" (run in worker processes).

Each is safe to rerun: embeddings are cached per text, marks are synchronised
(not duplicated) and a metrics run only appends a snapshot.
"""

from __future__ import annotations

from typing import Any

from curation.auth.roles import Action
from curation.diversity.ray_embed import RayEmbedPool
from curation.diversity.service import (
    SCOPES,
    Selection,
    compute_diversity,
    embed_scope,
    embed_selection,
    resolve_batch,
    run_dedup,
)
from curation.executors import ExecutorChoice, describe_record, executor_record, ray_session
from curation.jobs.registry import JobContext, batch_targets, job_kind


def _progress(ctx: JobContext):  # noqa: ANN202 - a Progress callback
    def report(done: int, total: int | None, message: str) -> None:
        ctx.progress(done, total, message)

    return report


def embed_target(params: dict[str, Any]) -> str:
    if params.get("reference"):
        return "the reference set"
    if params.get("eval"):
        return "the evaluation sets"
    return f"batch {params.get('batch')!r}"


def _describe_embed(params: dict[str, Any]) -> str:
    return f"Embed {embed_target(params)}"


@job_kind(
    "embed",
    describe=_describe_embed,
    targets=lambda p: [embed_target(p)],
    doing="embedded",
    action=Action.ANALYSE,
)
def run_embed(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Embed what is missing, here or on Ray (`params["executor"]`); either way this
    process is the only one that writes vectors to the cache."""
    selection, _ = embed_scope(
        ctx.engine,
        reference=bool(params.get("reference")),
        eval_sets=bool(params.get("eval")),
        batch=params.get("batch"),
    )
    choice = ExecutorChoice.from_params(params)
    model, mode = params.get("model"), params.get("mode", "prompt+response")
    if not choice.is_ray:
        ctx.progress(0, None, counters={"executor": executor_record(choice)}, force=True)
        stats = embed_selection(ctx.engine, selection, model=model, mode=mode, progress=_progress(ctx))
        return stats.to_dict()
    with ray_session(choice) as cluster, RayEmbedPool(model) as pool:
        record = executor_record(choice, cluster)
        ctx.progress(0, None, f"embedding on {choice.describe()}", counters={"executor": record}, force=True)
        stats = embed_selection(
            ctx.engine, selection, model=model, mode=mode, progress=_progress(ctx), encoder=pool
        )
        return {**stats.to_dict(), "ray": pool.stats.to_dict()}


@job_kind(
    "dedup",
    describe=lambda p: f"Find duplicates in batch {p.get('batch')!r}",
    targets=batch_targets,
    doing="deduplicated",
    action=Action.ANALYSE,
)
def run_dedup_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """On Ray this process is the driver: MinHash signatures are computed by Ray tasks,
    and this process stores them and the marks (Ray workers never open the store)."""
    choice = ExecutorChoice.from_params(params)

    def run() -> dict[str, Any]:
        return run_dedup(
            ctx.engine,
            params["batch"],
            scopes=params.get("scopes") or SCOPES,
            semantic=params.get("semantic", True),
            model=params.get("model"),
            mode=params.get("mode", "prompt+response"),
            executor=choice,
            progress=_progress(ctx),
        )

    if not choice.is_ray:
        record = executor_record(choice)
        ctx.progress(0, None, "finding duplicates", counters={"executor": record}, force=True)
        return {**run(), "executor": record}
    with ray_session(choice) as cluster:
        record = executor_record(choice, cluster)
        ctx.progress(0, None, f"on {describe_record(record)}", counters={"executor": record}, force=True)
        return {**run(), "executor": record}


@job_kind(
    "diversity", describe=lambda p: f"Diversity metrics of batch {p.get('batch')!r}", action=Action.ANALYSE
)
def run_diversity_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    info = resolve_batch(ctx.engine, params["batch"])
    result = compute_diversity(
        ctx.engine,
        Selection(batch_ids=(info.id,)),
        model=params.get("model"),
        mode=params.get("mode", "prompt+response"),
        seed=int(params.get("seed", 0)),
        progress=_progress(ctx),
    )
    return {
        "batch": info.name,
        "snapshot_id": result.snapshot_id,
        "warnings": [w.message for w in result.report.warnings],
        "metrics": {k: v.get("synthetic") for k, v in result.report.metrics.items()},
    }
