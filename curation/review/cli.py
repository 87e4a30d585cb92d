"""`python -m curation review-stats --batch NAME [--json]`: where the review of a
batch stands — decisions, the acceptance-sampling plan and bound, verifiers
against humans, agreement between reviewers, where to sample more.

`python -m curation review reviewers [--batch NAME] [--json]`: each reviewer's count,
pace, accept rate, kappa with each other reviewer and each verifier, and drift."""

from __future__ import annotations

import argparse
import json

from sqlalchemy import Engine

from curation.review.reviewers import IDLE_SECONDS, ReviewerMetrics, reviewer_metrics
from curation.review.sampling import DEFAULT_CONFIDENCE, DEFAULT_MAX_ERROR
from curation.review.stats import ReviewStats, review_stats
from curation.store.queries import batch_id_by_name


def _pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def format_stats(name: str, stats: ReviewStats) -> str:
    """The human-readable report of `review_stats`."""
    a = stats.acceptance
    lines = [f"batch {name!r}", "", "decisions"]
    lines += [f"  {label:<10} {n:>10,}" for label, n in stats.decisions.items()]
    lines += [
        "",
        f"acceptance sampling: claim 'error rate ≤ {a.max_error:.1%}' at {a.confidence:.0%} confidence",
        f"  verifier-passed samples (the set) {a.population:>10,}",
        f"  zero-failure plan: read           {a.plan:>10,}",
        f"  spot-check pool drawn             {a.pool:>10,}",
        f"  read (accept + reject)            {a.reviewed:>10,}",
        f"  failures (rejected)               {a.failures:>10,}",
        f"  needed with these failures        {a.required:>10,}",
        f"  Clopper–Pearson upper bound       {_pct(a.upper_bound, 2):>10}",
        f"  bound holds                       {'yes' if a.holds else 'no':>10}",
        "",
        "verifiers against human decisions (passed = positive)",
        f"  {'verifier':<28} {'n':>6} {'TP':>6} {'FP':>6} {'FN':>6} {'TN':>6} {'precision':>10} {'recall':>8}",
    ]
    for s in stats.verifiers:
        lines.append(
            f"  {s.verifier:<28} {s.n:>6} {s.tp:>6} {s.fp:>6} {s.fn:>6} {s.tn:>6} "
            f"{_pct(s.precision):>10} {_pct(s.recall):>8}"
        )
    if not stats.verifiers:
        lines.append("  (no verified sample has a human decision yet)")
    g = stats.agreement
    lines += ["", f"agreement: {g.items} samples decided by two or more reviewers"]
    for pair in g.pairs:
        lines.append(
            f"  Cohen's kappa {pair.first} / {pair.second}: {_num(pair.kappa)} "
            f"(observed {_pct(pair.observed)} on {pair.items})"
        )
    if g.fleiss_items and len(g.reviewers) > 2:
        lines.append(
            f"  Fleiss' kappa ({g.fleiss_raters} raters, {g.fleiss_items} samples): {_num(g.fleiss)}"
        )
    lines += ["", "reviewers", f"  {'reviewer':<24} {'decided':>8} {'accept rate':>12} {'median s':>9}"]
    for r in stats.reviewers:
        lines.append(
            f"  {r.reviewer:<24} {r.decided:>8} {_pct(r.accept_rate):>12} {_num(r.median_seconds, 1):>9}"
        )
    if stats.suggestions:
        lines += ["", "where to look next"] + [f"  - {text}" for text in stats.suggestions]
    return "\n".join(lines)


def format_reviewers(scope: str, metrics: ReviewerMetrics) -> str:
    """The human-readable report of `reviewer_metrics`."""
    lines = [
        f"reviewers of {scope} (pace: median seconds between decisions, gaps over "
        f"{metrics.idle_seconds:g} s left out as idle)",
        f"  {'reviewer':<24} {'decisions':>9} {'pace s':>8} {'idle gaps':>9} {'accept rate':>12}",
    ]
    for r in metrics.reviewers:
        lines.append(
            f"  {r.reviewer:<24} {r.decisions:>9} {_num(r.pace_seconds, 1):>8} {r.idle_gaps:>9} "
            f"{_pct(r.accept_rate):>12}"
        )
    if not metrics.reviewers:
        lines.append("  (no human decisions yet)")
    lines += ["", "Cohen's kappa between reviewers (accept / reject on the samples both decided)"]
    lines += [
        f"  {p.first} / {p.second}: {_num(p.kappa)} (observed {_pct(p.observed)} on {p.items})"
        for p in metrics.pairs
    ] or ["  (no sample was decided by two reviewers)"]
    lines += ["", "Cohen's kappa against verifiers (current versions; passed = accept)"]
    lines += [
        f"  {v.reviewer} / {v.verifier}: {_num(v.kappa)} (observed {_pct(v.observed)} on {v.items})"
        for v in metrics.verifiers
    ] or ["  (no decided sample has a current verdict)"]
    lines += ["", "drift (each reviewer's decisions in time order, in slices)"]
    for d in metrics.drift:
        lines.append(
            f"  {d.reviewer:<24} slice {d.window + 1:>2}: {d.decisions:>5} decisions, accept rate "
            f"{_pct(d.accept_rate)}, agreement with others {_pct(d.agreement)} ({d.compared} compared)"
        )
    return "\n".join(lines)


def cmd_review_reviewers(args: argparse.Namespace, engine: Engine) -> int:
    batch_id = batch_id_by_name(engine, args.batch) if args.batch else None
    metrics = reviewer_metrics(engine, batch_id, idle_seconds=args.idle_seconds, windows=args.windows)
    if args.json:
        print(json.dumps({"batch": args.batch, **metrics.to_dict()}, indent=2, default=str))
    else:
        print(format_reviewers(f"batch {args.batch!r}" if args.batch else "all batches", metrics))
    return 0


def cmd_review_stats(args: argparse.Namespace, engine: Engine) -> int:
    batch_id = batch_id_by_name(engine, args.batch)
    stats = review_stats(engine, batch_id, args.max_error, args.confidence)
    if args.json:
        print(json.dumps({"batch": args.batch, **stats.to_dict()}, indent=2, default=str))
    else:
        print(format_stats(args.batch, stats))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "review-stats",
        help="review progress of a batch: decisions, acceptance-sampling bound, verifiers vs humans",
    )
    p.add_argument("--batch", required=True, help="batch name")
    p.add_argument(
        "--max-error", type=float, default=DEFAULT_MAX_ERROR, help="claimed error rate p (default 0.05)"
    )
    p.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, help="confidence c (default 0.95)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_review_stats)

    review = subparsers.add_parser("review", help="review reports (reviewers)")
    commands = review.add_subparsers(dest="review_command", metavar="REPORT", required=True)
    p = commands.add_parser(
        "reviewers", help="per reviewer: count, pace, accept rate, kappa with reviewers and verifiers, drift"
    )
    p.add_argument("--batch", default=None, help="batch name (default: all batches)")
    p.add_argument(
        "--idle-seconds",
        type=float,
        default=IDLE_SECONDS,
        help=f"gaps between decisions longer than this are idle, not pace (default {IDLE_SECONDS:g})",
    )
    p.add_argument("--windows", type=int, default=10, help="drift slices per reviewer (default 10: deciles)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_review_reviewers)
