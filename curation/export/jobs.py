"""The "export" job kind: `run_export` in a worker process."""

from __future__ import annotations

from typing import Any

from curation.auth.roles import Action
from curation.executors import ExecutorChoice, executor_record
from curation.export.config import ExportConfig
from curation.export.run import run_export
from curation.jobs.registry import JobContext, job_kind


def _describe(params: dict[str, Any]) -> str:
    return f"Export ({params.get('format', 'jsonl')}) to {params['out']}"


@job_kind(
    "export", describe=_describe, targets=lambda p: [f"export destination {p['out']!r}"], doing="written",
    action=Action.EXPORT,
)
def run_export_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    where = {"executor": executor_record(ExecutorChoice.from_params(params))}
    result = run_export(
        ctx.engine,
        ctx.actor,
        ExportConfig.from_dict(params),
        progress=lambda done, total, message: ctx.progress(done, total, message, where),
    )
    return {
        "export_id": result.export_id,
        "rows": result.rows,
        "files": result.files,
        "out_dir": str(result.out_dir),
        "manifest": str(result.manifest_path),
        "card": str(result.card_path) if result.card_path else None,
        "synthetic": result.counts["synthetic"],
        "real": result.counts["real"],
    }
