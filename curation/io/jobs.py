"""The "import" job kind: `import_file` in a worker; an interrupted import is discarded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curation.auth.roles import Action
from curation.io.importer import discard_partial_import, import_file
from curation.jobs.registry import JobContext, batch_targets, job_kind


def _describe(params: dict[str, Any]) -> str:
    kind = {"real": "reference set", "eval": "evaluation set"}.get(params.get("origin", ""), "batch")
    return f"Import {Path(params['path']).name} as {kind} {params['batch']!r}"


@job_kind(
    "import", cleanup=discard_partial_import, describe=_describe, targets=batch_targets, doing="imported",
    action=Action.IMPORT,
)
def run_import(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    return import_file(
        ctx.engine,
        ctx.actor,
        params["path"],
        params["batch"],
        origin=params.get("origin", "synthetic"),
        source=params.get("source"),
        progress=lambda done, total, message: ctx.progress(done, total, message),
    )
