"""Starting and resuming generation jobs from the app, and the choices the page offers.

A key typed into the page never enters job parameters: the worker process gets
it through its own environment (`start_job(env=...)`), under a one-off variable
name that the parameters name instead (`api_key_env`). This process's
environment never holds it.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from sqlalchemy import Engine

from curation.auth.roles import Action, Actor, writes
from curation.generation.params import GenerationParams
from curation.jobs import get_job, resume_job, start_job
from curation.sources.reasoning_gym_source import MATH_DATASETS

SESSION_KEY_PREFIX = "ASSAY_TEACHER_KEY_"

#: (label, source kind) per (family, mode), in the order the page shows them.
SOURCE_CHOICES: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("math", "solve"): [("reasoning-gym problems (with answers)", "reasoning_gym"), ("Problem file", "file")],
    ("code", "solve"): [("HumanEval problems (with tests)", "humaneval"), ("Problem file", "file")],
    ("instruction", "solve"): [
        ("Instructions with IFEval-style constraints", "ifeval"),
        ("Problem file", "file"),
    ],
    ("open", "solve"): [("Open-ended prompts", "open_prompts"), ("Problem file", "file")],
}
WRITE_CHOICE = [("New problems written by the teacher", "topics")]


def source_choices(family: str, mode: str) -> list[tuple[str, str]]:
    return WRITE_CHOICE if mode == "write" else SOURCE_CHOICES[(family, mode)]


def math_datasets() -> list[str]:
    return sorted(MATH_DATASETS)


@writes(Action.GENERATE)
def start_generation(
    engine: Engine, actor: Actor, params: dict[str, Any], *, api_key: str | None = None, created_by: str = ""
) -> int:
    """Validate `params` and start a "generate" job in a worker process; returns the job id.
    With `api_key`, the worker receives it through a one-off environment variable."""
    checked = GenerationParams.from_dict(params).to_dict()
    if not api_key:
        return start_job(engine, actor, "generate", checked, created_by=created_by)
    var = SESSION_KEY_PREFIX + secrets.token_hex(6).upper()
    checked["teacher"]["api_key_env"] = var
    return start_job(engine, actor, "generate", checked, created_by=created_by, env={var: api_key})


@writes(Action.GENERATE)
def resume_generation(
    engine: Engine, actor: Actor, job_id: int, *, api_key: str | None = None, created_by: str = ""
) -> int:
    """Resume a failed, stopped or cancelled generation (only what is missing is requested).
    A run started with a typed-in key needs that key again (`api_key`)."""
    var = (get_job(engine, job_id).params.get("teacher") or {}).get("api_key_env")
    if api_key and var:
        return resume_job(engine, actor, job_id, created_by=created_by, env={var: api_key})
    return resume_job(engine, actor, job_id, created_by=created_by)


def needs_session_key(params: dict[str, Any]) -> bool:
    """True if the run's key was typed into the page (so a resume must be given it again)."""
    var = (params.get("teacher") or {}).get("api_key_env") or ""
    return var.startswith(SESSION_KEY_PREFIX) and var not in os.environ
