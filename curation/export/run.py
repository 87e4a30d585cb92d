"""Run an export: plan, stream the rows to the writer, record the Export and its
ExportRow links, then write the manifest and the dataset card.

The Export row, its links (with the split) and the ids of every dropped row (by
reason) are written in one transaction after the files, so every exported row
resolves back to its sample and every row left out can be explained later
(`curation.export.reconcile`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Engine, String, bindparam, insert, select
from sqlalchemy.orm import Session

from curation import __version__
from curation.auth.roles import Action, Actor, writes
from curation.export.candidates import rule_record
from curation.export.card import dataset_card
from curation.export.config import ExportConfig
from curation.export.parallel import Tally, can_parallelise, write_split
from curation.export.plan import SPLITS, ExportPlan, plan_export, reason_label, resolve_batches
from curation.export.preference import EVIDENCE_KINDS, pair_rows
from curation.export.rows import batch_info, id_param, id_rows, iter_records
from curation.io.writers import WRITERS
from curation.review.sampling import acceptance_summary
from curation.store.db import session_scope
from curation.store.models import Export, ExportRow, MetricSnapshot

Progress = Callable[[int, int | None, str], None]
LINK_CHUNK = 50_000


@dataclass(frozen=True)
class ExportResult:
    export_id: int
    out_dir: Path
    files: dict[str, str]
    rows: int
    counts: dict[str, Any]
    manifest_path: Path
    card_path: Path | None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def output_layout(config: ExportConfig, splits: list[str]) -> tuple[Path, dict[str, str], Path, Path | None]:
    """(folder, file name per split, manifest path, card path) for the config's `out`.

    `out` is a folder (created), or — for a single-file format and one split — a
    file path ending in the format's extension, with `<stem>.manifest.json` beside it."""
    writer = WRITERS.get(config.format)
    out = Path(config.out)
    if not config.out:
        raise ValueError("an output folder is required")
    if not writer.folder and writer.extension and out.suffix == writer.extension:
        if len(splits) > 1:
            raise ValueError(
                "a validation split needs an output folder (one file per split), not a file path"
            )
        return out.parent, {splits[0]: out.name}, out.with_name(out.stem + ".manifest.json"), None
    if writer.folder:
        names = {split: split for split in splits}
    elif len(splits) == 1:
        names = {splits[0]: f"data{writer.extension}"}
    else:
        names = {split: f"{split}{writer.extension}" for split in splits}
    return out, names, out / "manifest.json", out / "README.md"


def _folder_hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root.parent)): sha256_file(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _diversity(engine: Engine, plan: ExportPlan) -> dict[str, Any]:
    """The latest MetricSnapshot of each exported batch (and of workspace-wide scopes)."""
    out: dict[str, Any] = {}
    ids = {b: name for b, name in plan.batch_names.items()}
    with session_scope(engine, write=False) as session:
        for snap in session.scalars(select(MetricSnapshot).order_by(MetricSnapshot.id)):
            if snap.batch_id is not None and snap.batch_id not in ids:
                continue
            key = ids.get(snap.batch_id, snap.scope) if snap.batch_id is not None else snap.scope
            out[key] = {
                "scope": snap.scope,
                "model": snap.model,
                "at": snap.created_at.isoformat(),
                "metrics": snap.metrics,
            }
    return out


def _acceptance_bounds(engine: Engine, plan: ExportPlan) -> dict[str, Any]:
    """The acceptance-sampling state (`curation.review.sampling`) of each exported synthetic batch:
    the Clopper–Pearson upper bound of its error rate from the random spot-check."""
    synthetic = set(plan.batches.get("synthetic", []))
    exported = set(plan.batch_ids.tolist())
    return {
        name: acceptance_summary(engine, batch_id).to_dict()
        for batch_id, name in plan.batch_names.items()
        if name in synthetic and batch_id in exported
    }


def _link_statement(engine: Engine) -> Any:
    """INSERT INTO export_rows SELECT :export_id, id, :split over one id-array parameter
    (the database expands the array: no per-row parameters for a million links)."""
    table = ExportRow.__table__
    ids = id_rows(engine).subquery()
    rows = select(bindparam("export_id", type_=BigInteger), ids.c[0], bindparam("split", type_=String))
    return insert(table).from_select(["export_id", "sample_id", "split"], rows)


def _add_export(
    session: Session,
    config: ExportConfig,
    out_path: str,
    config_record: dict[str, Any],
    counts: dict[str, Any],
    files: dict[str, str],
    created_at: datetime,
) -> int:
    """The run's Export row, flushed so that its id is known; returns the id."""
    export = Export(
        out_path=out_path,
        config=config_record,
        counts=counts,
        files=files,
        created_by=config.created_by,
        created_at=created_at,
    )
    session.add(export)
    session.flush()
    return export.id


def _manifest_head(
    export_id: int, config: ExportConfig, config_record: dict[str, Any], created_at: datetime
) -> dict[str, Any]:
    """The first keys of every export's manifest, in the order they are written."""
    return {
        "export_id": export_id,
        "assay_version": __version__,
        "created_at": created_at.isoformat(),
        "created_by": config.created_by,
        "format": config.format,
        "config": config_record,
    }


@writes(Action.EXPORT)
def run_export(engine: Engine, actor: Actor, config: ExportConfig, progress: Progress | None = None) -> ExportResult:
    """Plan, then write the files, the Export row and links, the manifest and the card.

    Raises ValueError when the plan has errors (nothing is written then)."""
    writer = WRITERS.get(config.format)()
    missing = writer.missing_dependencies()
    if missing:
        raise ValueError(f"the {config.format} format needs {', '.join(missing)}")
    if writer.pairs:
        return run_preference_export(engine, config, progress)
    plan = plan_export(engine, config, progress)
    if plan.errors:
        raise ValueError("; ".join(plan.errors))
    splits = plan.split_names()
    out_dir, names, manifest_path, card_path = output_layout(config, splits)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = plan.rows
    done = 0
    batches = batch_info(engine, plan.batch_names)
    tally = Tally()

    def on_chunk(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total, f"wrote {done:,} of {total:,} rows")

    if can_parallelise(engine, total, writer):
        written = {
            split: write_split(
                engine,
                writer,
                config.format,
                plan.split_ids(split),
                split,
                batches,
                out_dir / names[split],
                tally,
                on_chunk,
            )
            for split in splits
        }
    else:
        streams = {
            split: tally.wrap(
                iter_records(engine, plan.split_ids(split), split=split, batches=batches, on_chunk=on_chunk)
            )
            for split in splits
        }
        written = writer.write_splits(streams, out_dir, names)
    if writer.folder:
        files = {}
        for split in splits:
            files.update(_folder_hashes(out_dir / names[split]))
        files["dataset_dict.json"] = sha256_file(out_dir / "dataset_dict.json")
    else:
        files = {names[split]: sha256_file(out_dir / names[split]) for split in splits}
    summary = plan.summary()
    rows = sum(written.values())
    if rows != total:
        raise RuntimeError(f"the writer wrote {rows:,} rows but the plan has {total:,}")
    counts = {
        "rows": rows,
        "synthetic": summary["synthetic"],
        "real": summary["real"],
        "synthetic_share": summary["synthetic_share"],
        "families": summary["families"],
        "family_shares": summary["family_shares"],
        "splits": summary["splits"],
        "batches": dict(tally.batches),
        "candidates": summary["candidates"],
        "not_accepted": summary["not_accepted"],
        "dropped": summary["dropped"],
    }
    metrics = {
        "verifier_pass_rates": tally.pass_rates(),
        "diversity": _diversity(engine, plan),
        "acceptance_sampling": _acceptance_bounds(engine, plan),
    }
    created_at = datetime.now(UTC)
    config_record = {
        **config.to_dict(),
        "selection": "accepted synthetic samples and real reference rows",
        "batches_resolved": plan.batches,
    }
    with session_scope(engine) as session:
        export_id = _add_export(
            session,
            config,
            str(out_dir / names[splits[0]]) if len(splits) == 1 and not writer.folder else str(out_dir),
            config_record,
            {**counts, "dropped_ids": {reason: ids.tolist() for reason, ids in plan.dropped_ids.items()}},
            files,
            created_at,
        )
        link = _link_statement(engine)
        for split_index, split in enumerate(SPLITS):
            # in id order: the (export_id, sample_id) and sample_id indexes are appended to, not scattered into
            ids = np.sort(plan.ids[plan.splits == split_index]).tolist()
            for start in range(0, len(ids), LINK_CHUNK):
                session.connection().execute(
                    link,
                    {
                        "export_id": export_id,
                        "split": split,
                        "ids": id_param(engine, ids[start : start + LINK_CHUNK]),
                    },
                )
    manifest = {
        **_manifest_head(export_id, config, config_record, created_at),
        "allow_dropping_real": config.allow_dropping_real,
        "candidate_rule": rule_record(config.candidates),
        "counts": counts,
        "dropped": [
            {"code": code, "reason": reason_label(code), **n} for code, n in summary["dropped"].items()
        ],
        "warnings": summary["warnings"],
        "files": files,
        "metrics": metrics,
    }
    write_manifest(manifest_path, manifest)
    if card_path is not None:
        card_path.write_text(dataset_card(manifest, writer, batches, list(files)), encoding="utf-8")
    if progress is not None:
        progress(total, total, f"exported {rows:,} rows")
    return ExportResult(
        export_id=export_id,
        out_dir=out_dir,
        files=files,
        rows=rows,
        counts=counts,
        manifest_path=manifest_path,
        card_path=card_path,
    )


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def run_preference_export(
    engine: Engine, config: ExportConfig, progress: Progress | None = None
) -> ExportResult:
    """Write the preference pairs of the chosen synthetic batches (`curation.export.preference`),
    the Export row (no row links: a pair is two samples, named in its provenance) and the manifest."""
    writer = WRITERS.get(config.format)()
    with session_scope(engine, write=False) as session:
        synthetic = resolve_batches(session, "synthetic", config.batches)
    rows = pair_rows(engine, synthetic, config.families)
    if not rows:
        raise ValueError(
            "no preference pairs: no problem has a passing and a failing candidate, an accepted and a rejected "
            "one, or two different judge scores"
        )
    out_dir, names, manifest_path, _ = output_layout(config, ["train"])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / names["train"]
    written = writer.write(rows, path)
    files = {names["train"]: sha256_file(path)}
    by_evidence = {
        kind: sum(row["provenance"]["evidence"]["kind"] == kind for row in rows) for kind in EVIDENCE_KINDS
    }
    counts = {
        "rows": written,
        "pairs": written,
        "pairs_by_evidence": by_evidence,
        "batches": {
            name: sum(row["provenance"]["batch"] == name for row in rows) for name in synthetic.values()
        },
    }
    created_at = datetime.now(UTC)
    config_record = {
        **config.to_dict(),
        "selection": "preference pairs of candidates of the same problem (human, verifier or judge evidence)",
        "batches_resolved": {"synthetic": list(synthetic.values())},
    }
    with session_scope(engine) as session:
        export_id = _add_export(session, config, str(path), config_record, counts, files, created_at)
    manifest = {
        **_manifest_head(export_id, config, config_record, created_at),
        "counts": counts,
        "files": files,
        "load": writer.load_snippet(list(files)),
    }
    write_manifest(manifest_path, manifest)
    if progress is not None:
        progress(written, written, f"exported {written:,} preference pairs")
    return ExportResult(export_id, out_dir, files, written, counts, manifest_path, None)
