"""Nothing silently dropped: a reconciliation table per batch.

    requested → generated → verified → deduplicated → reviewed → exported

Every difference between consecutive columns is split into reasons that add up to
it exactly: failed generation by error kind, pending or skipped requests, dedup
marks by kind, review decisions, and the export's own drop reasons (the ids it
stored per reason), batches or families it did not select, decisions made after
it. A difference that no reason explains is reported by `problems()`.

Plus the cost per accepted sample by batch, teacher and prompt template, from the
generation accounting in `Batch.stats` (cost, tokens) and `Batch.generation_config`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, exists, func, select

from curation.data import record_dict
from curation.export.plan import MARK_PRIORITY, reason_label
from curation.store.db import session_scope
from curation.store.models import Batch, Decision, Export, ExportRow, GenerationRequest, Mark, Sample, as_utc
from curation.store.queries import HIDDEN_STATUSES

STEPS = ("requested", "generated", "verified", "deduplicated", "reviewed", "exported")
UNEXPLAINED = "unexplained"
_IN_CHUNK = 5000


@dataclass
class Step:
    """One column: its count, the reasons for the drop from the previous column
    (signed: a negative count is a row that appears at this step only), and its
    composition (e.g. verified: pass / fail / unknown)."""

    name: str
    count: int
    reasons: dict[str, int] = field(default_factory=dict)
    breakdown: dict[str, int] = field(default_factory=dict)
    note: str = ""


@dataclass
class BatchReconciliation:
    batch: str
    batch_id: int
    origin: str
    requested_basis: str
    steps: list[Step]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def differences(self) -> list[dict[str, Any]]:
        out = []
        for before, after in zip(self.steps, self.steps[1:], strict=False):
            diff = before.count - after.count
            out.append(
                {
                    "from": before.name,
                    "to": after.name,
                    "difference": diff,
                    "reasons": dict(after.reasons),
                    "explained": sum(after.reasons.values()) == diff and UNEXPLAINED not in after.reasons,
                }
            )
        return out

    def problems(self) -> list[str]:
        return [
            f"batch {self.batch!r}: {d['from']} → {d['to']} differs by {d['difference']:,}, reasons add up to "
            f"{sum(d['reasons'].values()):,}"
            + (f" ({d['reasons'][UNEXPLAINED]:,} unexplained)" if UNEXPLAINED in d["reasons"] else "")
            for d in self.differences()
            if not d["explained"]
        ]

    def row(self) -> dict[str, Any]:
        """One flat table row: counts per column and the reasons as text."""
        out: dict[str, Any] = {"batch": self.batch, "origin": self.origin}
        for step in self.steps:
            out[step.name] = step.count
            if step.breakdown:
                out[f"{step.name} (detail)"] = describe(step.breakdown)
            if step.reasons:
                out[f"→ {step.name}: why fewer"] = describe(step.reasons)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**record_dict(self), "differences": self.differences()}


def describe(counts: dict[str, int]) -> str:
    """ "30 rejected, 8 undecided, 2 duplicate of real" (largest first, zeros left out)."""
    items = sorted(((k, v) for k, v in counts.items() if v), key=lambda kv: (-abs(kv[1]), kv[0]))
    return ", ".join(f"{v:,} {k}" for k, v in items)


@dataclass
class Reconciliation:
    export_id: int | None
    export_created_at: datetime | None
    batches: list[BatchReconciliation]

    def table(self) -> list[dict[str, Any]]:
        return [b.row() for b in self.batches]

    def problems(self) -> list[str]:
        return [p for b in self.batches for p in b.problems()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "export_id": self.export_id,
            "export_created_at": self.export_created_at,
            "batches": [b.to_dict() for b in self.batches],
        }

    def format_text(self) -> str:
        head = (
            f"reconciliation against export {self.export_id}"
            if self.export_id
            else "reconciliation (no export yet)"
        )
        lines = [head]
        for b in self.batches:
            lines.append("")
            lines.append(f"{b.batch} ({b.origin}; requested = {b.requested_basis})")
            for step in b.steps:
                line = f"  {step.name:<13}{step.count:>10,}"
                if step.reasons:
                    line += f"   why fewer: {describe(step.reasons)}"
                if step.breakdown:
                    line += f"   [{describe(step.breakdown)}]"
                if step.note:
                    line += f"   ({step.note})"
                lines.append(line)
        return "\n".join(lines)


def _latest_export(session: Any, export_id: int | None) -> Export | None:
    if export_id is not None:
        export = session.get(Export, export_id)
        if export is None:
            raise KeyError(f"no export {export_id}")
        return export
    # a preference export holds pairs of candidates, not rows of samples: never the one reconciled by default
    for export in session.scalars(select(Export).order_by(Export.id.desc())):
        if (export.config or {}).get("format") != "preference":
            return export
    return None


def _mark_kind(kinds: list[str]) -> str:
    return min(kinds, key=lambda k: MARK_PRIORITY.index(k) if k in MARK_PRIORITY else len(MARK_PRIORITY))


def _chunks(ids: list[int]) -> Any:
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start : start + _IN_CHUNK]


def _count_by(session: Any, column: Any, *where: Any) -> dict[Any, int]:
    """How many rows of `column`'s table match `where`, per value of `column`."""
    return dict(session.execute(select(column, func.count()).where(*where).group_by(column)).all())


def _requested(session: Any, batch: Batch, generated: int) -> tuple[int, str, dict[str, int]]:
    """(requested, basis, reasons for requested - generated)."""
    by_status = _count_by(session, GenerationRequest.status, GenerationRequest.batch_id == batch.id)
    if by_status:
        requested = sum(by_status.values())
        failed = _count_by(
            session,
            GenerationRequest.error_kind,
            GenerationRequest.batch_id == batch.id,
            GenerationRequest.status == "failed",
        )
        reasons = {f"failed generation: {kind or 'unknown'}": n for kind, n in failed.items()}
        if by_status.get("pending"):
            reasons["not generated yet (pending)"] = by_status["pending"]
        if by_status.get("skipped"):
            reasons["skipped"] = by_status["skipped"]
        return requested, "generation requests", reasons
    stats = batch.stats or {}
    config = batch.generation_config or {}
    if "imported" in stats or "imported_from" in config:
        return int(stats.get("imported", generated)), "imported rows", {}
    if isinstance(stats.get("slots"), int):
        return int(stats["slots"]), "generation slots (n × items)", {}
    return generated, "samples (no request record)", {}


def _export_scope(export: Export | None) -> tuple[set[str] | None, set[str] | None, dict[int, str]]:
    """(batch names, families, dropped id → reason code) of an export."""
    if export is None:
        return None, None, {}
    config = export.config or {}
    resolved = config.get("batches_resolved")
    if resolved:
        names = set(resolved.get("synthetic", [])) | set(resolved.get("real", []))
    else:
        chosen = config.get("batches")
        names = None if chosen in (None, "all") else set(chosen)
    families = config.get("families")
    dropped: dict[int, str] = {}
    for code, ids in ((export.counts or {}).get("dropped_ids") or {}).items():
        for i in ids:
            dropped.setdefault(int(i), code)
    return names, (set(families) if families else None), dropped


def _reconcile_batch(
    session: Any, batch: Batch, export: Export | None, scope: tuple[Any, Any, dict[int, str]]
) -> BatchReconciliation:
    samples = select(func.count()).select_from(Sample).where(Sample.batch_id == batch.id)
    generated = int(session.scalar(samples) or 0)
    requested, basis, gen_reasons = _requested(session, batch, generated)
    residual = requested - generated - sum(gen_reasons.values())
    if residual:
        gen_reasons[UNEXPLAINED] = residual
    steps = [Step("requested", requested, note=basis), Step("generated", generated, reasons=gen_reasons)]

    passed = _count_by(session, Sample.passed, Sample.batch_id == batch.id)
    steps.append(
        Step(
            "verified",
            generated,
            breakdown={
                "pass": passed.get(True, 0),
                "fail": passed.get(False, 0),
                "unknown": passed.get(None, 0),
            },
        )
    )

    real = batch.origin == "real"
    open_mark = and_(Mark.sample_id == Sample.id, Mark.overridden_by.is_(None))
    marked_ids: dict[int, list[str]] = {}
    if not real:
        for sample_id, kind in session.execute(
            select(Mark.sample_id, Mark.kind)
            .join(Sample, Sample.id == Mark.sample_id)
            .where(Sample.batch_id == batch.id, Mark.overridden_by.is_(None))
        ):
            marked_ids.setdefault(sample_id, []).append(kind)
    dedup_reasons = Counter(
        f"duplicate: {_mark_kind(kinds).replace('_', ' ')}" for kinds in marked_ids.values()
    )
    kept = generated - len(marked_ids)
    steps.append(
        Step(
            "deduplicated",
            kept,
            reasons=dict(dedup_reasons),
            note="dedup marks are not applied to real data (all real rows are kept)"
            if real
            else "marks not overridden",
        )
    )

    decisions_all = _count_by(session, Sample.decision, Sample.batch_id == batch.id)
    unmarked = Sample.batch_id == batch.id
    if not real:
        unmarked = and_(unmarked, ~exists().where(open_mark))
    decisions_kept = _count_by(session, Sample.decision, unmarked)
    breakdown = {
        "accept": decisions_all.get("accept", 0),
        "reject": decisions_all.get("reject", 0),
        "skip": decisions_all.get("skip", 0),
        "undecided": decisions_all.get(None, 0),
    }
    if real:
        eligible = Sample.decision.is_distinct_from("reject")
        review_reasons = {"rejected": decisions_kept.get("reject", 0)}
        reviewed = kept - review_reasons["rejected"]
        note = "real rows: every row not rejected is eligible"
    else:
        eligible = Sample.decision == "accept"
        review_reasons = {
            "rejected": decisions_kept.get("reject", 0),
            "skipped": decisions_kept.get("skip", 0),
            "undecided": decisions_kept.get(None, 0),
        }
        reviewed = decisions_kept.get("accept", 0)
        note = "accepted, not marked"
    steps.append(
        Step(
            "reviewed",
            reviewed,
            reasons={k: v for k, v in review_reasons.items() if v},
            breakdown=breakdown,
            note=note,
        )
    )

    steps.append(_exported_step(session, batch, export, scope, and_(unmarked, eligible), reviewed))
    return BatchReconciliation(batch.name, batch.id, batch.origin, basis, steps)


def _exported_step(
    session: Any,
    batch: Batch,
    export: Export | None,
    scope: tuple[Any, Any, dict[int, str]],
    eligible: Any,
    reviewed: int,
) -> Step:
    if export is None:
        return Step("exported", 0, reasons={"no export yet": reviewed} if reviewed else {})
    names, families, dropped = scope
    in_export = exists().where(ExportRow.export_id == export.id, ExportRow.sample_id == Sample.id)
    exported = int(
        session.scalar(
            select(func.count())
            .select_from(ExportRow)
            .join(Sample, Sample.id == ExportRow.sample_id)
            .where(ExportRow.export_id == export.id, Sample.batch_id == batch.id)
        )
        or 0
    )
    reasons: Counter[str] = Counter()
    missing = session.execute(select(Sample.id, Sample.family).where(eligible, ~in_export)).all()
    batch_out = names is not None and batch.name not in names
    undetermined: list[int] = []
    for sample_id, family in missing:
        if batch_out:
            reasons["batch not in the export"] += 1
        elif families is not None and family not in families:
            reasons["family not in the export"] += 1
        elif sample_id in dropped:
            reasons[reason_label(dropped[sample_id])] += 1
        else:
            undetermined.append(sample_id)
    if undetermined:
        later = 0
        for chunk in _chunks(undetermined):
            later += int(
                session.scalar(
                    select(func.count()).select_from(
                        select(Decision.sample_id)
                        .where(Decision.sample_id.in_(chunk))
                        .group_by(Decision.sample_id)
                        .having(func.max(Decision.created_at) > export.created_at)
                        .subquery()
                    )
                )
                or 0
            )
        if later:
            reasons["decided after the export"] += later
        created_later = batch.created_at is not None and as_utc(batch.created_at) > as_utc(export.created_at)
        rest = len(undetermined) - later
        if rest:
            reasons["batch created after the export" if created_later else UNEXPLAINED] += rest
    extra = int(
        session.scalar(
            select(func.count())
            .select_from(ExportRow)
            .join(Sample, Sample.id == ExportRow.sample_id)
            .where(ExportRow.export_id == export.id, Sample.batch_id == batch.id, ~eligible)
        )
        or 0
    )
    if extra:
        reasons["exported, then rejected, un-accepted or marked after the export"] -= extra
    return Step("exported", exported, reasons=dict(reasons), note=f"export {export.id}")


def reconcile(engine: Engine, *, batch: str | None = None, export_id: int | None = None) -> Reconciliation:
    """The reconciliation of every synthetic and real batch (or one) against an export
    (default: the latest)."""
    with session_scope(engine, write=False) as session:
        export = _latest_export(session, export_id)
        scope = _export_scope(export)
        query = select(Batch).where(
            Batch.origin.in_(("synthetic", "real")), Batch.status.not_in(HIDDEN_STATUSES)
        )
        if batch is not None:
            query = query.where(Batch.name == batch)
        batches = list(session.scalars(query.order_by(Batch.origin.desc(), Batch.id)))
        if batch is not None and not batches:
            raise KeyError(f"no synthetic or real batch named {batch!r}")
        rows = [_reconcile_batch(session, b, export, scope) for b in batches]
        return Reconciliation(
            export_id=export.id if export else None,
            export_created_at=export.created_at if export else None,
            batches=rows,
        )


def template_label(config: dict[str, Any]) -> str:
    """A short, stable name of a batch's prompt template: family/mode, first words, hash."""
    template = config.get("template")
    if not template:
        return "imported" if "imported_from" in config else "none"
    text = json.dumps(template, sort_keys=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    user = (template.get("user") or "").strip().replace("\n", " ")
    user = user.replace("{examples}", "").strip()
    snippet = user[:40] + ("…" if len(user) > 40 else "")
    return f"{config.get('family', '?')}/{config.get('mode', '?')}: {snippet} [{digest}]"


def cost_table(engine: Engine, *, batch: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Cost per accepted sample by batch, by teacher and by prompt template.

    Cost and tokens come from `Batch.stats` as the generation run recorded them
    (cost in the currency of the configured prices); batches without generation
    accounting (imported) are left out."""
    with session_scope(engine, write=False) as session:
        query = select(Batch).where(Batch.origin == "synthetic", Batch.status.not_in(HIDDEN_STATUSES))
        if batch is not None:
            query = query.where(Batch.name == batch)
        batches = list(session.scalars(query.order_by(Batch.id)))
        in_batches = Sample.batch_id.in_([b.id for b in batches])
        accepted = _count_by(session, Sample.batch_id, in_batches, Sample.decision == "accept")
        generated = _count_by(session, Sample.batch_id, in_batches)
    by_batch = []
    for b in batches:
        stats = b.stats or {}
        if "cost" not in stats:
            continue
        config = b.generation_config or {}
        n = accepted.get(b.id, 0)
        cost = float(stats.get("cost") or 0.0)
        by_batch.append(
            {
                "batch": b.name,
                "teacher": f"{config.get('teacher', '?')}/{config.get('model', '?')}",
                "template": template_label(config),
                "cost": cost,
                "prompt_tokens": int(stats.get("prompt_tokens") or 0),
                "completion_tokens": int(stats.get("completion_tokens") or 0),
                "generated": generated.get(b.id, 0),
                "accepted": n,
                "cost_per_accepted": cost / n if n else None,
            }
        )

    def group(key: str) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for row in by_batch:
            entry = out.setdefault(
                row[key], {key: row[key], "batches": 0, "cost": 0.0, "generated": 0, "accepted": 0}
            )
            entry["batches"] += 1
            entry["cost"] += row["cost"]
            entry["generated"] += row["generated"]
            entry["accepted"] += row["accepted"]
        for entry in out.values():
            entry["cost_per_accepted"] = entry["cost"] / entry["accepted"] if entry["accepted"] else None
        return sorted(out.values(), key=lambda e: e[key])

    return {"by_batch": by_batch, "by_teacher": group("teacher"), "by_template": group("template")}


def list_exports(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    """Recent exports, newest first: id, time, author, output path, rows."""
    with session_scope(engine, write=False) as session:
        exports = session.execute(
            select(Export.id, Export.created_at, Export.created_by, Export.out_path)
            .order_by(Export.id.desc())
            .limit(limit)
        ).all()
        rows = _count_by(session, ExportRow.export_id, ExportRow.export_id.in_([e.id for e in exports]))
    return [
        {
            "id": e.id,
            "created_at": e.created_at,
            "created_by": e.created_by,
            "out_path": e.out_path,
            "rows": rows.get(e.id, 0),
        }
        for e in exports
    ]
