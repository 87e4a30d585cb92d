"""The "export" job kind, the archive of an export folder, and the original
`export_accepted` entry point (accepted synthetic samples only).

The export itself lives in `curation.export` (plan, rows, writers, manifest, card)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from curation.export import ExportConfig, ExportResult, run_export, sha256_file
from curation.export.rows import iter_records
from curation.jobs.registry import JobContext, job_kind

__all__ = ["ExportResult", "archive_export", "export_accepted", "provenance_rows", "sha256_file"]


def export_accepted(
    engine: Engine,
    out: str | Path,
    *,
    batch_names: list[str] | None = None,
    fmt: str = "jsonl",
    created_by: str = "",
    progress: Callable[[int, int | None, str], None] | None = None,
) -> ExportResult:
    """Write the accepted synthetic samples (no real rows, no decontamination) to `out`
    with a manifest: a folder (data<ext>, manifest.json, README.md) or a file path
    ending in the format's extension (manifest beside it)."""
    config = ExportConfig(
        out=str(out), format=fmt, batches=batch_names, reference_sets=[], eval_sets=[], created_by=created_by
    )
    return run_export(engine, config, progress)


def provenance_rows(engine: Engine, sample_ids: list[int]) -> Iterator[dict[str, Any]]:
    """Interchange records plus a `provenance` object, as dicts, in the given order."""
    for record in iter_records(engine, sample_ids):
        yield record.to_dict()


def archive_export(out_dir: str | Path, files: list[str] | None = None) -> Path:
    """`<out_dir>.zip` holding the export folder (or just `files` of it), made once."""
    out_dir = Path(out_dir)
    target = out_dir.with_name(out_dir.name + ".zip")
    members = sorted(p for p in out_dir.rglob("*") if p.is_file()) if files is None else [out_dir / f for f in files]
    newest = max((p.stat().st_mtime for p in members), default=0.0)
    if target.exists() and target.stat().st_mtime >= newest:
        return target
    partial = target.with_name(target.name + ".part")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in members:
            archive.write(path, arcname=str(Path(out_dir.name) / path.relative_to(out_dir)))
    partial.replace(target)
    return target


def _describe(params: dict[str, Any]) -> str:
    return f"Export ({params.get('format', 'jsonl')}) to {params['out']}"


@job_kind("export", describe=_describe)
def run_export_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    result = run_export(
        ctx.engine,
        ExportConfig.from_dict(params),
        progress=lambda done, total, message: ctx.progress(done, total, message),
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
