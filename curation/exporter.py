"""Export accepted samples with provenance on every row.

Rows stream from the store in id order (nothing is held in memory beyond a chunk);
the Export row and its ExportRow links are written in the same transaction as the
manifest is finalised, so every exported row resolves back to its sample."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select

from curation import __version__
from curation.jobs.registry import JobContext, job_kind
from curation.samples import HIDDEN_STATUSES
from curation.store.db import session_scope
from curation.store.models import Batch, Decision, Export, ExportRow, Sample, Verdict
from curation.writers import WRITERS

CHUNK = 2000


@dataclass(frozen=True)
class ExportResult:
    export_id: int
    out_dir: Path
    files: dict[str, str]
    rows: int
    counts: dict[str, Any]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _selected_ids(engine: Engine, batch_names: list[str] | None) -> list[int]:
    query = (
        select(Sample.id)
        .join(Batch, Batch.id == Sample.batch_id)
        .where(Sample.decision == "accept", Batch.status.not_in(HIDDEN_STATUSES), Batch.origin == "synthetic")
        .order_by(Sample.id)
    )
    with session_scope(engine, write=False) as session:
        if batch_names:
            known = set(session.scalars(select(Batch.name).where(Batch.name.in_(batch_names))))
            missing = sorted(set(batch_names) - known)
            if missing:
                raise KeyError(f"no batch named {missing[0]!r}")
            query = query.where(Batch.name.in_(batch_names))
        return list(session.scalars(query))


def provenance_rows(engine: Engine, sample_ids: list[int]) -> Iterator[dict[str, Any]]:
    """Interchange records plus a `provenance` object, chunk by chunk."""
    for start in range(0, len(sample_ids), CHUNK):
        ids = sample_ids[start : start + CHUNK]
        with session_scope(engine, write=False) as session:
            samples = session.execute(
                select(Sample, Batch).join(Batch, Batch.id == Sample.batch_id).where(Sample.id.in_(ids))
            ).all()
            verdicts: dict[int, list[dict[str, Any]]] = {}
            for v in session.scalars(select(Verdict).where(Verdict.sample_id.in_(ids)).order_by(Verdict.id)):
                verdicts.setdefault(v.sample_id, []).append(
                    {"verifier": v.verifier, "version": v.version, "passed": v.passed, "score": v.score, "reason": v.reason}
                )
            latest: dict[int, Decision] = {}
            for d in session.scalars(select(Decision).where(Decision.sample_id.in_(ids)).order_by(Decision.id)):
                latest[d.sample_id] = d
            by_id = {sample.id: (sample, batch) for sample, batch in samples}
            for sample_id in ids:
                sample, batch = by_id[sample_id]
                decision = latest.get(sample_id)
                config = dict(batch.generation_config or {})
                yield {
                    "id": sample.external_id or f"assay-{sample.id}",
                    "family": sample.family,
                    "prompt": sample.prompt,
                    "response": sample.response,
                    "reference": sample.reference or {},
                    "metadata": sample.meta or {},
                    "provenance": {
                        "source": "real" if batch.origin == "real" else "synthetic",
                        "sample_id": sample.id,
                        "batch": batch.name,
                        "batch_source": batch.source,
                        "teacher": config.get("teacher"),
                        "model": config.get("model"),
                        "generation_params": config.get("params", {}),
                        "generation": batch.generation,
                        "verdicts": verdicts.get(sample_id, []),
                        "decision": None
                        if decision is None
                        else {
                            "action": sample.decision,
                            "reviewer": decision.reviewer,
                            "at": decision.created_at.isoformat(),
                            "reason_tags": list(decision.reason_tags or []),
                            "decision_id": decision.id,
                        },
                        "content_hash": sample.content_hash,
                    },
                }


def export_accepted(
    engine: Engine,
    out: str | Path,
    *,
    batch_names: list[str] | None = None,
    fmt: str = "jsonl",
    created_by: str = "",
    progress: Callable[[int, int | None, str], None] | None = None,
) -> ExportResult:
    """Write the accepted synthetic samples to `out` with a manifest.

    `out` is a folder (created; gets data<ext> and manifest.json) or, for file
    formats, a file path ending in the format's extension (manifest beside it)."""
    writer = WRITERS.get(fmt)()
    out = Path(out)
    if out.suffix == writer.extension:
        out_dir, data_path = out.parent, out
        manifest_path = out.with_name(out.stem + ".manifest.json")
    else:
        out_dir, data_path = out, out / f"data{writer.extension}"
        manifest_path = out / "manifest.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = _selected_ids(engine, batch_names)
    total = len(ids)

    def counted(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for done, row in enumerate(rows, start=1):
            if progress is not None and done % CHUNK == 0:
                progress(done, total, f"wrote {done:,} of {total:,} rows")
            yield row

    families: dict[str, int] = {}
    batches: dict[str, int] = {}

    def tally(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            families[row["family"]] = families.get(row["family"], 0) + 1
            batches[row["provenance"]["batch"]] = batches.get(row["provenance"]["batch"], 0) + 1
            yield row

    written = writer.write(counted(tally(provenance_rows(engine, ids))), data_path)
    files = {data_path.name: sha256_file(data_path)}
    counts = {"rows": written, "synthetic": written, "real": 0, "families": families, "batches": batches}
    config = {"format": fmt, "batches": batch_names or "all", "selection": "accepted synthetic samples"}
    with session_scope(engine) as session:
        export = Export(out_path=str(data_path), config=config, counts=counts, files=files, created_by=created_by)
        session.add(export)
        session.flush()
        for start in range(0, len(ids), CHUNK):
            session.execute(
                insert(ExportRow), [{"export_id": export.id, "sample_id": i} for i in ids[start : start + CHUNK]]
            )
        export_id = export.id
    manifest = {
        "export_id": export_id,
        "assay_version": __version__,
        "config": config,
        "counts": counts,
        "files": files,
        "created_by": created_by,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if progress is not None:
        progress(total, total, f"exported {written:,} rows")
    return ExportResult(export_id=export_id, out_dir=out_dir, files=files, rows=written, counts=counts)


def _describe(params: dict[str, Any]) -> str:
    return f"Export accepted samples to {params['out']}"


@job_kind("export", describe=_describe)
def run_export(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    result = export_accepted(
        ctx.engine,
        params["out"],
        batch_names=params.get("batches") or None,
        fmt=params.get("format", "jsonl"),
        created_by=params.get("created_by", ""),
        progress=lambda done, total, message: ctx.progress(done, total, message),
    )
    return {"export_id": result.export_id, "rows": result.rows, "files": result.files, "out_dir": str(result.out_dir)}
