"""`python -m curation generate ...` and `python -m curation teacher-models ...`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from curation.auth import command_actor
from curation.generation.estimate import estimate_generation
from curation.generation.params import GenerationParams
from curation.generation.run import teacher_models
from curation.generation.templates import default_template
from curation.jobs import submit_job
from curation.jobs.console import run_job_with_progress
from curation.sources import parse_source_spec
from curation.sources.reasoning_gym_source import suggest_family
from curation.store.db import session_scope
from curation.store.models import Batch
from curation.teachers import TeacherConfig, TeacherError


def register(subparsers: argparse._SubParsersAction) -> None:
    gen = subparsers.add_parser(
        "generate",
        help="generate a candidate batch with a teacher (runs as a job in this process)",
        description=(
            "Generate candidates with an OpenAI-compatible teacher or the offline simulated teacher. "
            "Sources: reasoning_gym:DATASET:N, reasoning_gym:A=N,B=M, humaneval:N, file:PATH, "
            "ifeval:N, open_prompts:N, topics:N (write mode). The API key is read from the environment "
            "variable named by --api-key-env and never stored."
        ),
    )
    gen.add_argument("--batch", required=True, help="name of the batch to create (or continue with --resume)")
    gen.add_argument("--family", choices=("math", "code", "instruction", "open"), default=None)
    gen.add_argument("--mode", choices=("solve", "write"), default="solve")
    gen.add_argument("--source", required=True, metavar="SPEC")
    gen.add_argument("--teacher", choices=("simulated", "openai"), default="simulated")
    gen.add_argument("--base-url", default="", metavar="URL")
    gen.add_argument("--model", default="")
    gen.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR")
    gen.add_argument("--n", type=int, default=1, help="candidates per problem")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--concurrency", type=int, default=16)
    gen.add_argument(
        "--processes",
        type=int,
        default=0,
        help="processes to spread the requests over (0: two from concurrency 128 on a multi-core machine)",
    )
    gen.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    gen.add_argument("--max-retries", type=int, default=6)
    gen.add_argument("--temperature", type=float, default=0.7)
    gen.add_argument("--top-p", type=float, default=None)
    gen.add_argument("--max-tokens", type=int, default=1024)
    gen.add_argument("--teacher-seed", type=int, default=None, help="sampling seed sent to the endpoint")
    gen.add_argument("--system-prompt", default=None)
    gen.add_argument("--split-candidates", action="store_true", help="one request per candidate instead of n")
    gen.add_argument(
        "--fault-rate", type=float, default=0.2, help="simulated teacher: share of faulty candidates"
    )
    gen.add_argument("--topics", default="", help="comma-separated seed topics")
    gen.add_argument("--personas", default="", help="semicolon-separated personas")
    gen.add_argument("--difficulty", default="", help="comma-separated difficulties")
    gen.add_argument("--few-shot", choices=("reference", "accepted"), default=None)
    gen.add_argument("--few-shot-k", type=int, default=2)
    gen.add_argument(
        "--consistency", action="store_true", help="majority answer and agreement over the n candidates"
    )
    gen.add_argument("--price-prompt", type=float, default=0.0, help="price per million prompt tokens")
    gen.add_argument(
        "--price-completion", type=float, default=0.0, help="price per million completion tokens"
    )
    gen.add_argument(
        "--price-batch-prompt",
        type=float,
        default=None,
        help="Batch API price per million prompt tokens (default: the online price)",
    )
    gen.add_argument(
        "--price-batch-completion",
        type=float,
        default=None,
        help="Batch API price per million completion tokens (default: the online price)",
    )
    gen.add_argument(
        "--batch-api",
        action="store_true",
        help="send the requests through the provider's Batch API (/v1/files + /v1/batches)",
    )
    gen.add_argument(
        "--batch-poll-seconds", type=float, default=60.0, help="longest wait between two polls of a batch"
    )
    gen.add_argument(
        "--max-cost",
        type=float,
        default=None,
        metavar="USD",
        help="spend cap for the whole batch: stop sending before it could be crossed",
    )
    gen.add_argument(
        "--error-threshold", type=float, default=0.5, help="stop when this share of recent requests fails"
    )
    gen.add_argument(
        "--schema",
        default=None,
        metavar="FILE",
        help="a JSON schema (file) for structured output: answers are validated, invalid ones kept and flagged",
    )
    gen.add_argument(
        "--structured-output",
        choices=("json_schema", "prompt"),
        default="json_schema",
        help="send the schema as response_format (default) or, for endpoints without it, in the prompt",
    )
    gen.add_argument(
        "--turns",
        type=int,
        default=1,
        help="turns per conversation (open and instruction batches; default 1)",
    )
    gen.add_argument(
        "--user-persona", default=None, help="who the teacher plays when it writes the user's follow-ups"
    )
    gen.add_argument(
        "--followups", default=None, metavar="FILE", help="the user's follow-up messages, one per line"
    )
    gen.add_argument("--no-cache", action="store_true")
    gen.add_argument(
        "--resume", action="store_true", help="continue an existing batch (requests only what is missing)"
    )
    gen.set_defaults(func=run_generate_command)

    models = subparsers.add_parser("teacher-models", help="list the models of an OpenAI-compatible endpoint")
    models.add_argument("--base-url", required=True, metavar="URL")
    models.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR")
    models.add_argument("--timeout", type=float, default=30.0)
    models.set_defaults(func=run_models_command, needs_store=False)


def _split(text: str, sep: str = ",") -> list[str]:
    return [part.strip() for part in text.split(sep) if part.strip()]


def _default_family(source: dict[str, Any]) -> str:
    kind = source["kind"]
    if kind == "reasoning_gym":
        families = {suggest_family(name) for name in source["datasets"]}
        return families.pop() if len(families) == 1 else "open"
    fixed = {"humaneval": "code", "ifeval": "instruction", "open_prompts": "open"}
    if kind in fixed:
        return fixed[kind]
    raise ValueError(f"give --family for a {kind} source")


def build_params(args: argparse.Namespace) -> dict[str, Any]:
    source = parse_source_spec(args.source)
    levers: dict[str, Any] = {}
    if args.topics:
        levers["topics"] = _split(args.topics)
    if args.personas:
        levers["personas"] = _split(args.personas, ";")
    if args.difficulty:
        levers["difficulty"] = _split(args.difficulty)
    if args.few_shot:
        levers["few_shot"] = {"from": args.few_shot, "k": args.few_shot_k}
    teacher = {
        "kind": args.teacher,
        "base_url": args.base_url,
        "model": args.model if args.teacher == "openai" else "",
        "api_key_env": args.api_key_env or None,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_tokens": args.max_tokens,
        "seed": args.teacher_seed,
        "system_prompt": args.system_prompt,
        "timeout": args.timeout,
        "concurrency": args.concurrency,
        "processes": args.processes,
        "max_retries": args.max_retries,
        "split_candidates": args.split_candidates,
        "fault_rate": args.fault_rate,
        "structured_output": args.structured_output,
    }
    family = args.family or _default_family(source)
    if args.teacher == "openai" and not (args.base_url and args.model):
        raise ValueError("the openai teacher needs --base-url and --model")
    params = GenerationParams.from_dict(
        {
            "batch": args.batch,
            "family": family,
            "mode": args.mode,
            "source": source,
            "teacher": teacher,
            "levers": levers,
            "n": args.n,
            "seed": args.seed,
            "cache": not args.no_cache,
            "prices": {
                "prompt_per_million": args.price_prompt,
                "completion_per_million": args.price_completion,
                **(
                    {"batch_prompt_per_million": args.price_batch_prompt}
                    if args.price_batch_prompt is not None
                    else {}
                ),
                **(
                    {"batch_completion_per_million": args.price_batch_completion}
                    if args.price_batch_completion is not None
                    else {}
                ),
            },
            "batch_api": args.batch_api,
            "batch_poll_seconds": args.batch_poll_seconds,
            "max_cost": args.max_cost,
            "error_rate_threshold": args.error_threshold,
            "consistency": args.consistency,
            "template": _template_with_schema(args, family, args.mode),
            **_conversation_params(args),
        }
    )
    return params.to_dict()


def _conversation_params(args: argparse.Namespace) -> dict[str, Any]:
    """turns, user_persona and followups (read from the --followups file) when given."""
    out: dict[str, Any] = {"turns": args.turns}
    if args.user_persona:
        out["user_persona"] = args.user_persona
    if args.followups:
        try:
            out["followups"] = Path(args.followups).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"--followups {args.followups}: {exc}") from None
    return out


def _template_with_schema(args: argparse.Namespace, family: str, mode: str) -> dict[str, Any] | None:
    """The default template of (family, mode) with the --schema file's JSON schema, or None."""
    if not args.schema:
        return None
    try:
        schema = json.loads(Path(args.schema).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"--schema {args.schema}: {exc}") from None
    return {**default_template(family, mode).to_dict(), "schema": schema}


def run_generate_command(args: argparse.Namespace, engine: Engine) -> int:
    params = build_params(args)
    with session_scope(engine, write=False) as session:
        exists = session.scalar(select(Batch.id).where(Batch.name == args.batch)) is not None
    if exists and not args.resume:
        raise ValueError(f"batch {args.batch!r} already exists; pass --resume to continue it")
    print(estimate_generation(engine, params).describe(), flush=True)
    job_id = submit_job(engine, command_actor(args, engine), "generate", params)
    job = run_job_with_progress(engine, job_id)
    if job.state != "succeeded":
        return 1
    result = job.result
    print(
        f"batch {result['batch']!r} (id {result['batch_id']}): {result['ok']:,}/{result['slots']:,} ok, "
        f"{result['failed']:,} failed, {result['cached']:,} cached, {result['requests']:,} requests, "
        f"{result['prompt_tokens'] + result['completion_tokens']:,} tokens, ${result['cost']:.4f}"
    )
    return 0


def run_models_command(args: argparse.Namespace, engine: Engine | None) -> int:
    config = TeacherConfig(
        kind="openai", base_url=args.base_url, api_key_env=args.api_key_env or None, timeout=args.timeout
    )
    try:
        models = teacher_models(config)
    except TeacherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in models:
        print(name)
    return 0
