"""`export` and `reconcile` subcommands."""

from __future__ import annotations

import argparse
import json
import sys

from sqlalchemy import Engine

from curation.auth import command_actor
from curation.export import ExportConfig, plan_export, reason_label, run_export
from curation.export.candidates import CANDIDATE_RULES
from curation.export.reconcile import cost_table, reconcile
from curation.io.writers import WRITERS
from curation.jobs import refuse_if_busy
from curation.jobs.console import end_progress, print_progress


def _family_shares(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or []:
        family, sep, share = value.partition("=")
        if not sep:
            raise ValueError(f"--family-share wants FAMILY=SHARE (e.g. math=0.5), got {value!r}")
        out[family.strip()] = share.strip()
    return out


def config_from_args(args: argparse.Namespace) -> ExportConfig:
    return ExportConfig(
        out=args.out,
        format=args.format,
        batches=args.batch or None,
        families=args.families or None,
        reference_sets=[] if args.no_reference else (args.reference or None),
        eval_sets=[] if args.no_eval else (args.eval_set or None),
        synthetic_share=args.synthetic_share,
        family_shares=_family_shares(args.family_share),
        allow_dropping_real=args.allow_dropping_real,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        candidates=args.candidates,
        created_by=args.reviewer or "cli",
    )


def _print_plan(summary: dict) -> None:
    share = summary["synthetic_share"]
    print(
        f"plan: {summary['rows']:,} rows — {summary['synthetic']:,} synthetic, {summary['real']:,} real"
        + (f", synthetic share {share:.1%}" if share is not None else "")
    )
    for family, n in summary["families"].items():
        print(f"  {family:<12} synthetic {n['synthetic']:>9,}  real {n['real']:>9,}")
    for split, n in summary["splits"].items():
        print(f"  split {split:<10} {n['synthetic'] + n['real']:>9,}")
    for code, n in summary["dropped"].items():
        print(f"  dropped {sum(n.values()):>9,}  {reason_label(code)}")
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    for error in summary["errors"]:
        print(f"error: {error}", file=sys.stderr)


def cmd_export(args: argparse.Namespace, engine: Engine) -> int:
    config = config_from_args(args)
    if args.plan:
        plan = plan_export(engine, config)
        _print_plan(plan.summary())
        return 0 if plan.ok else 1
    actor = command_actor(args, engine)
    refuse_if_busy(engine, "export", config.to_dict())
    result = run_export(engine, actor, config, progress=print_progress)
    end_progress()
    for name, digest in result.files.items():
        print(f"{result.out_dir / name}  sha256 {digest}")
    counts = result.counts
    if "pairs" in counts:
        print(
            f"exported {result.rows} preference pairs (export {result.export_id}); manifest {result.manifest_path}"
        )
        return 0
    print(
        f"exported {result.rows} rows ({counts['synthetic']} synthetic, {counts['real']} real) "
        f"(export {result.export_id}); manifest {result.manifest_path}"
    )
    return 0


def cmd_reconcile(args: argparse.Namespace, engine: Engine) -> int:
    report = reconcile(engine, batch=args.batch, export_id=args.export)
    costs = cost_table(engine, batch=args.batch)
    if args.json:
        print(json.dumps({"reconciliation": report.to_dict(), "cost": costs}, indent=2, default=str))
        return 0 if not report.problems() else 1
    print(report.format_text())
    if costs["by_batch"]:
        print()
        print("cost per accepted sample")
        for row in costs["by_batch"]:
            per = row["cost_per_accepted"]
            print(
                f"  {row['batch']:<24} {row['teacher'] or '':<20} cost ${row['cost']:.4f}  accepted {row['accepted']:>8,}  "
                + (f"${per:.6f}/accepted" if per is not None else "n/a")
            )
    problems = report.problems()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 0 if not problems else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export accepted synthetic samples mixed with real data, with provenance, manifest and card",
        description="Plan and write an export. Every real row is kept unless --allow-dropping-real; "
        "synthetic copies of real rows and rows overlapping an evaluation set are dropped with a reason.",
    )
    p.add_argument(
        "--out", required=True, help="output folder, or a file path ending in the format's extension"
    )
    p.add_argument(
        "--format", default="jsonl", choices=WRITERS.names(), help="output format (default: jsonl)"
    )
    p.add_argument("--batch", action="extend", nargs="+", help="synthetic batches (default: all)")
    p.add_argument("--families", action="extend", nargs="+", help="only these families (default: all)")
    p.add_argument(
        "--reference", action="extend", nargs="+", help="reference sets of real data (default: all)"
    )
    p.add_argument("--no-reference", action="store_true", help="no real data in the export")
    p.add_argument(
        "--eval-set",
        action="extend",
        nargs="+",
        help="evaluation sets to decontaminate against (default: all)",
    )
    p.add_argument("--no-eval", action="store_true", help="no decontamination")
    p.add_argument(
        "--synthetic-share", default=None, help="share of synthetic rows, 0.3 or 30%% (default: keep all)"
    )
    p.add_argument(
        "--family-share", action="append", metavar="FAMILY=SHARE", help="a family's own synthetic share"
    )
    p.add_argument(
        "--allow-dropping-real",
        action="store_true",
        help="drop real rows when the share needs it (recorded in the manifest)",
    )
    p.add_argument("--seed", type=int, default=0, help="shuffle and sampling seed (default: 0)")
    p.add_argument(
        "--validation-fraction", type=float, default=0.0, help="share of rows in the validation split"
    )
    p.add_argument(
        "--candidates",
        choices=CANDIDATE_RULES,
        default=None,
        help="best-of-n: keep the first passing candidate of each problem, all passing ones, or the best "
        "by judge score (default: every accepted candidate); recorded in the manifest",
    )
    p.add_argument(
        "--plan", action="store_true", help="print the plan (counts, drops, warnings) and write nothing"
    )
    p.add_argument("--reviewer", default="", help="name recorded as the export's author")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser(
        "reconcile",
        help="per batch: requested → generated → verified → deduplicated → reviewed → exported, with reasons",
    )
    p.add_argument("--batch", default=None, help="only this batch")
    p.add_argument(
        "--export", type=int, default=None, help="reconcile against this export (default: the latest)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_reconcile)
