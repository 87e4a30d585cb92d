"""Subcommands: embed, dedup, diversity, collapse."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from curation.auth import Action, command_actor, require
from curation.diversity.embed import DEFAULT_MODEL, TEXT_MODES
from curation.diversity.service import (
    SCOPES,
    Selection,
    collapse_for,
    compute_diversity,
    embed_scope,
    resolve_batch,
)
from curation.executors import (
    add_executor_arguments,
    checked_executor_from_args,
    describe_record,
)
from curation.jobs import submit_job
from curation.jobs.console import end_progress, print_progress, run_job_with_progress


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def cmd_embed(args: argparse.Namespace, engine: Engine) -> int:
    """Runs the embed job in this process (the driver, with `--executor ray`)."""
    choice = checked_executor_from_args(args)
    _, target = embed_scope(engine, reference=args.reference, eval_sets=args.eval, batch=args.batch)
    params = {
        "batch": args.batch,
        "reference": args.reference,
        "eval": args.eval,
        "model": args.model,
        "mode": args.text_mode,
        **choice.to_params(),
    }
    job = run_job_with_progress(engine, submit_job(engine, command_actor(args, engine), "embed", params))
    if job.state != "succeeded":
        return 1
    stats = job.result
    computed, seconds = stats["computed"], stats["seconds"]
    rate = f", {computed / seconds:,.1f} texts/s" if computed and seconds else ""
    print(
        f"{target}: {stats['samples']:,} samples, {stats['distinct']:,} distinct texts, "
        f"{stats['cached']:,} already cached, {computed:,} embedded in {seconds:.1f}s{rate} "
        f"({stats['model']}, backend {stats['backend'] or 'n/a'}; {describe_record(job.counters.get('executor'))})"
    )
    return 0


def cmd_dedup(args: argparse.Namespace, engine: Engine) -> int:
    """Runs the "dedup" job in this process (the driver, on Ray), so the job records
    where it ran and a crash is reaped and resumable like any job."""
    choice = checked_executor_from_args(args)
    resolve_batch(engine, args.batch)
    params = {
        "batch": args.batch,
        "scopes": list(args.scope or SCOPES),
        "semantic": not args.no_semantic,
        "model": args.model,
        "mode": args.text_mode,
        **choice.to_params(),
    }
    job = run_job_with_progress(engine, submit_job(engine, command_actor(args, engine), "dedup", params))
    if job.state != "succeeded":
        return 1
    result = job.result
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"batch {result['batch']!r}: {result['samples']:,} samples")
    for kind, n in result["findings"].items():
        print(f"  {kind:<22} {n:>7,}")
    changes = result["marks"]
    print(
        f"marks: {changes['added']} added, {changes['updated']} kept, {changes['removed']} removed "
        "(overridden marks are never removed)"
    )
    signatures = result.get("minhash") or {}
    if signatures.get("distinct"):
        print(
            f"MinHash: {signatures['computed']:,} texts signed, {signatures['stored']:,} signatures "
            f"reused from the store, on {describe_record(result.get('executor'))}"
        )
    return 0


def print_report(result: Any) -> None:
    report = result.report
    sampled = " (subsampled, seeded)" if report.sampled else ""
    print(
        f"{result.selection}: {report.n_synthetic:,} samples vs reference {', '.join(result.reference)} "
        f"({report.n_reference:,}); compared on {report.n_compared:,} each{sampled}; model {result.model}"
    )
    print(f"{'metric':<18} {'synthetic':>10} {'reference':>10} {'ratio':>7}")
    for name, entry in report.metrics.items():
        print(
            f"{name:<18} {_fmt(entry.get('synthetic')):>10} {_fmt(entry.get('reference')):>10} {_fmt(entry.get('ratio')):>7}"
        )
    clusters = report.clusters
    if clusters:
        print(
            f"clusters: k={clusters['k']} fitted on the reference; {clusters['empty_clusters']} hold no synthetic "
            f"sample ({clusters['empty_share']:.0%} of real samples; baseline {_fmt(clusters['baseline_empty_share'])})"
        )
    if report.baseline:
        print(
            f"reference-vs-reference baseline (halves of {report.baseline.get('n')}): "
            + ", ".join(f"{k} {_fmt(v)}" for k, v in report.baseline.items() if k != "n")
        )
    if report.warnings:
        print("warnings:")
        for w in report.warnings:
            print(f"  ! {w.code}: {w.message}")
    else:
        print("no warnings")


def cmd_diversity(args: argparse.Namespace, engine: Engine) -> int:
    if not args.no_save:
        require(command_actor(args, engine), Action.ANALYSE)  # the metric snapshot is a write
    info = resolve_batch(engine, args.batch)
    selection = Selection(batch_ids=(info.id,), decisions=tuple(args.decision or ()))
    result = compute_diversity(
        engine,
        selection,
        model=args.model,
        mode=args.text_mode,
        seed=args.seed,
        save=not args.no_save,
        progress=print_progress,
    )
    end_progress()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print_report(result)
    return 0


def cmd_collapse(args: argparse.Namespace, engine: Engine) -> int:
    require(command_actor(args, engine), Action.ANALYSE)  # measures unmeasured generations (a write)
    report = collapse_for(engine, args.batch, model=args.model, mode=args.text_mode, progress=print_progress)
    end_progress()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return 0
    print(f"lineage of {report.root_name!r}: {len(report.points)} generations")
    print(f"{'gen':>4} {'vendi÷ref':>10} {'coverage':>9} {'spread÷ref':>11} {'real share':>11}  batches")
    for p in report.points:
        m = p.metrics
        print(
            f"{p.generation:>4} {_fmt(m.get('vendi_ratio')):>10} {_fmt(m.get('coverage')):>9} "
            f"{_fmt(m.get('spread_ratio')):>11} {_fmt(p.real_share):>11}  {', '.join(p.batch_names)}"
        )
    for w in report.warnings:
        print(f"  ! {w.code}: {w.message}")
    if not report.warnings:
        print("no collapse warnings")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help=f"embedding model: a local path or cached name (default {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--text-mode", default="prompt+response", choices=TEXT_MODES, help="which text is embedded"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "embed", help="embed a batch (or the reference / evaluation sets); cached per text"
    )
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--batch", help="batch name")
    group.add_argument("--reference", action="store_true", help="every real (reference) batch")
    group.add_argument("--eval", action="store_true", help="every evaluation batch")
    _common(p)
    add_executor_arguments(p)
    p.set_defaults(func=cmd_embed)

    p = _batch_command(
        subparsers,
        "dedup",
        cmd_dedup,
        "mark exact, near and semantic duplicates, copies of real data, contamination",
    )
    p.add_argument(
        "--scope", action="append", choices=SCOPES, help="only these scopes (repeatable; default all)"
    )
    p.add_argument("--no-semantic", action="store_true", help="skip the embedding-based check")
    add_executor_arguments(p)

    p = _batch_command(
        subparsers,
        "diversity",
        cmd_diversity,
        "diversity metrics and warnings of a batch against the reference set",
    )
    p.add_argument(
        "--decision",
        action="append",
        choices=("accept", "reject", "skip", "undecided"),
        help="only samples with this decision (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the equal-size subsampling")
    p.add_argument("--no-save", action="store_true", help="do not record a metrics snapshot")

    _batch_command(
        subparsers, "collapse", cmd_collapse, "metric trend across the generations of a batch's lineage"
    )


def _batch_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    func: Callable[[argparse.Namespace, Engine], int],
    help_text: str,
) -> argparse.ArgumentParser:
    """A subcommand about one batch (--batch, --json and the embedding options); the caller adds the rest."""
    p = subparsers.add_parser(name, help=help_text)
    p.add_argument("--batch", required=True)
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=func)
    return p
