"""`python -m curation verify ...` (stored batches, as a job in this process) and
`python -m curation verify-file IN --out OUT` (no store)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sqlalchemy import Engine

from curation.auth import command_actor
from curation.executors import (
    add_executor_arguments,
    checked_executor_from_args,
    describe_record,
)
from curation.jobs import JobView, submit_job
from curation.jobs.console import end_progress, run_job_with_progress
from curation.store.queries import batch_id_by_name
from curation.verification.report import outcome_counts, verifier_summary
from curation.verification.runner import VerifyParams, plan_verification
from curation.verification.verify_file import verify_file


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify",
        help="verify stored batches (runs the verify job in this process; only what is missing)",
        description=(
            "Run each family's verifier chain (or the named verifiers) over the batches, on every core. "
            "Samples that already have a verdict of a verifier's current version are skipped unless "
            "--reverify. The judge verifier uses ASSAY_JUDGE_BASE_URL / ASSAY_JUDGE_MODEL / "
            "ASSAY_JUDGE_API_KEY_ENV, or the --judge-* options; the API key is read from the environment."
        ),
    )
    p.add_argument("--batch", action="append", required=True, help="batch name (repeatable)")
    p.add_argument("--verifier", action="append", default=None, help="run only this verifier (repeatable)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: every core)")
    p.add_argument("--reverify", action="store_true", help="verify again even where a verdict exists")
    _judge_options(p)
    add_executor_arguments(p)
    p.set_defaults(func=cmd_verify)

    p = subparsers.add_parser(
        "verify-file",
        help="verify an interchange file into a JSONL file with verdicts (no store)",
        description=(
            "Reads IN (JSONL, CSV or Parquet) and writes each record to OUT (JSONL), in order, with "
            '"verdicts": [{verifier, version, passed, score, reason}] and an overall "passed" (true/false/null).'
        ),
    )
    p.add_argument("input", metavar="IN")
    p.add_argument("--out", required=True, metavar="OUT.jsonl")
    p.add_argument("--verifier", action="append", default=None, help="run only this verifier (repeatable)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: every core)")
    _judge_options(p)
    add_executor_arguments(p)
    p.set_defaults(func=cmd_verify_file, needs_store=False)


def _judge_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--judge-base-url", default=None, metavar="URL", help="OpenAI-compatible judge endpoint")
    p.add_argument("--judge-model", default=None, metavar="MODEL")
    p.add_argument(
        "--judge-api-key-env",
        default=None,
        metavar="VAR",
        help="environment variable holding the judge's API key",
    )


def _judge(args: argparse.Namespace) -> dict[str, Any] | None:
    if not (args.judge_base_url or args.judge_model):
        return None
    if not (args.judge_base_url and args.judge_model):
        raise ValueError("give both --judge-base-url and --judge-model")
    judge: dict[str, Any] = {"base_url": args.judge_base_url, "model": args.judge_model}
    if args.judge_api_key_env is not None:
        judge["api_key_env"] = args.judge_api_key_env or None
    return judge


def _line(label: str, counts: dict[str, int]) -> str:
    passed, failed, unknown = counts.get("passed", 0), counts.get("failed", 0), counts.get("unknown", 0)
    judged = passed + failed
    rate = f"{passed / judged:7.1%}" if judged else "      —"
    return f"{label:<16}{passed:>9,}{failed:>9,}{unknown:>9,}{rate:>10}"


def _table(title: str, by_verifier: dict[str, dict[str, int]], overall: dict[str, int] | None) -> None:
    print(title)
    print(f"{'verifier':<16}{'pass':>9}{'fail':>9}{'unknown':>9}{'pass rate':>10}")
    for name in sorted(by_verifier):
        print(_line(name, by_verifier[name]))
    if overall is not None:
        print(_line("overall", overall))


def cmd_verify(args: argparse.Namespace, engine: Engine) -> int:
    choice = checked_executor_from_args(args)
    params = VerifyParams(
        batches=list(dict.fromkeys(args.batch)),
        verifiers=args.verifier,
        jobs=args.jobs,
        reverify=args.reverify,
        judge=_judge(args),
        **choice.to_params(),
    )
    batch_ids = [batch_id_by_name(engine, name) for name in params.batches]
    plan = plan_verification(params)
    for name, why in plan.skipped.items():
        print(f"note: {name} skipped: {why}", file=sys.stderr)
    job_id = submit_job(engine, command_actor(args, engine), "verify", params.to_dict())

    def line(job: JobView) -> str:
        counters = job.counters or {}
        if not (job.message and counters):
            return job.message
        return (
            f"{job.message}  pass {counters.get('passed', 0):,} · fail {counters.get('failed', 0):,}"
            f" · unknown {counters.get('unknown', 0):,}"
        )

    job = run_job_with_progress(engine, job_id, line)
    if job.state != "succeeded":
        return 1
    result = job.result
    print(
        f"job {job_id}: verified {result['samples']:,} samples ({result['verdicts']:,} verdicts) "
        f"in {result['seconds']:.1f}s on {describe_record(result.get('executor'))}"
    )
    if result.get("note"):
        print(f"note: {result['note']}")
    totals: dict[str, dict[str, int]] = {}
    for stat in verifier_summary(engine, batch_ids):
        counts = totals.setdefault(
            f"{stat.verifier} v{stat.version}", {"passed": 0, "failed": 0, "unknown": 0}
        )
        counts["passed"] += stat.passed
        counts["failed"] += stat.failed
        counts["unknown"] += stat.unknown
    overall = {"passed": 0, "failed": 0, "unknown": 0}
    for counts in outcome_counts(engine, batch_ids).values():
        for key in overall:
            overall[key] += counts[key]
    _table(f"verdicts in {', '.join(params.batches)}:", totals, overall)
    return 0


def cmd_verify_file(args: argparse.Namespace, engine: Engine | None) -> int:
    interactive = sys.stderr.isatty()

    def progress(done: int, message: str) -> None:
        if interactive:
            print(f"\r{message}", end="", file=sys.stderr, flush=True)

    try:
        result = verify_file(
            args.input,
            args.out,
            jobs=args.jobs,
            verifiers=args.verifier,
            judge=_judge(args),
            progress=progress,
            executor=checked_executor_from_args(args),
        )
    finally:
        end_progress()
    for name, why in result["skipped_verifiers"].items():
        print(f"note: {name} skipped: {why}", file=sys.stderr)
    print(
        f"wrote {result['records']:,} records to {result['out']} in {result['seconds']:.1f}s "
        f"({result['records_per_s'] or 0:,.0f} records/s, on {describe_record(result['executor'])})"
    )
    overall = {key: result[key] for key in ("passed", "failed", "unknown")}
    _table("verdicts:", result["by_verifier"], overall)
    return 0
