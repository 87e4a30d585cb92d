"""Run code against tests in the sandbox and turn the outcome into pass/fail.

Pass/fail is decided here, on the host, from the judge's token-authenticated report
only: the candidate's exit code, output or anything it printed never counts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from curation.sandbox.bwrap import (
    INSTALL_HINT,
    MODE_BARE,
    MODE_BWRAP,
    MODE_RLIMITS,
    UNSANDBOXED_ENV,
    HarnessRun,
    SandboxError,
    SandboxLimits,
    UidPool,
    bwrap_path,
    probe_bwrap,
    run_harness,
    sandbox_python,
)

EXCERPT_CHARS = 2000
MAX_REPORTED_TESTS = 200


@dataclass(frozen=True)
class CodeJob:
    """One program and its tests. `entry_point` names the function HumanEval-style
    ``check(candidate)`` tests receive; plain ``assert`` lines do not need it.
    `prelude` is trusted code (the prompt) run in the tests' namespace first, so the
    helpers tests use are the prompt's and not the candidate's redefinitions.
    `limits`, if set, override the limits the job is run with."""

    code: str
    tests: str
    entry_point: str | None = None
    prelude: str | None = None
    limits: SandboxLimits | None = None


@dataclass
class CodeResult:
    passed: bool | None
    score: float | None
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def unsandboxed_allowed(flag: bool | None = None) -> bool:
    """The explicit opt-in to run code with rlimits only (constructor flag, else env)."""
    if flag is not None:
        return flag
    return os.environ.get(UNSANDBOXED_ENV, "").strip().lower() in ("1", "true", "yes")


def resolve_mode(allow_unsandboxed: bool | None = None) -> tuple[str | None, str | None]:
    """(mode, problem): "bwrap" when a sandbox works here; "rlimits-only" only by
    explicit opt-in; else (None, why not) and code must not run."""
    problem = probe_bwrap()
    if problem is None:
        return MODE_BWRAP, None
    if unsandboxed_allowed(allow_unsandboxed):
        if sandbox_python() is None:
            return None, "no Python >= 3.11 outside the project to run code with"
        return MODE_RLIMITS, None
    if bwrap_path() is None:
        problem = (
            f"refusing to run model-written code without a sandbox: bubblewrap is not installed "
            f"({INSTALL_HINT}), or set {UNSANDBOXED_ENV}=1 to run it with rlimits only"
        )
    return None, problem


def run_code(
    job: CodeJob,
    *,
    limits: SandboxLimits | None = None,
    mode: str = MODE_BWRAP,
    pool: UidPool | None = None,
) -> CodeResult:
    """Run one job in a fresh sandbox. Sandbox trouble gives passed=None, never False."""
    limits = job.limits or limits or SandboxLimits()
    try:
        run = run_harness(
            job.code, job.tests, job.entry_point, prelude=job.prelude, limits=limits, mode=mode, pool=pool
        )
    except (SandboxError, OSError) as exc:
        return CodeResult(None, None, f"sandbox error: {exc}", {"sandbox": mode})
    return interpret(run, limits, job.entry_point)


def default_workers() -> int:
    return max(1, (os.cpu_count() or 1) * 2)


def run_many(
    jobs: Sequence[CodeJob],
    *,
    workers: int | None = None,
    limits: SandboxLimits | None = None,
    mode: str = MODE_BWRAP,
    pool: UidPool | None = None,
) -> list[CodeResult]:
    """Run jobs concurrently, results in input order.

    Each sandbox is its own process tree, so threads only wait on pipes; a sandbox
    spends part of its life in the kernel setting up and tearing down namespaces,
    hence the default of two workers per core. Each run takes its own uid slot."""
    if not jobs:
        return []
    count = min(len(jobs), workers or default_workers())
    if count == 1:
        return [run_code(job, limits=limits, mode=mode, pool=pool) for job in jobs]
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="sandbox") as ex:
        return list(ex.map(lambda job: run_code(job, limits=limits, mode=mode, pool=pool), jobs))


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…[truncated]"


def interpret(run: HarnessRun, limits: SandboxLimits, entry_point: str | None = None) -> CodeResult:
    """HarnessRun -> CodeResult (passed, score, short reason, details)."""
    details: dict[str, Any] = {
        "sandbox": run.mode,
        "exit_code": run.exit_code,
        "signal": run.signal,
        "stdout": _excerpt(run.stdout),
        "stderr": _excerpt(run.stderr),
        "stdout_bytes": run.stdout_bytes,
        "stderr_bytes": run.stderr_bytes,
        "wall_ms": round(run.wall_ms, 1),
    }
    if run.attempts > 1:
        details["attempts"] = run.attempts
    if run.fork_server is not None:
        details["fork_server"] = {"pid": run.fork_server[0], "run": run.fork_server[1]}
    if run.warnings:
        details["warning"] = " ".join(run.warnings)
    if run.mode == MODE_BARE:
        details["warning"] = "code ran with no isolation and no limits (benchmark baseline)"

    def result(passed: bool | None, score: float | None, reason: str) -> CodeResult:
        return CodeResult(passed, score, reason, details)

    if not run.launched and not (run.timed_out or run.output_exceeded):
        return result(None, None, run.problem or "sandbox failed to start")
    if run.output_exceeded:
        return result(False, 0.0, f"output limit exceeded ({limits.max_output_bytes} bytes)")
    report = run.report
    if report is None:
        if run.timed_out:
            return result(False, 0.0, f"timeout (wall clock {limits.wall:g}s)")
        return result(False, 0.0, "no result from harness (early exit?)")
    tests = [t for t in report.get("tests", []) if isinstance(t, dict)]
    total = len(tests)
    passed_count = sum(1 for t in tests if t.get("passed") is True)
    details["tests"] = tests[:MAX_REPORTED_TESTS]
    details["tests_passed"] = passed_count
    details["tests_total"] = total
    details["candidate_status"] = report.get("candidate_status")
    details["cpu_seconds"] = report.get("cpu_seconds")
    if report.get("harness_error"):
        return result(None, None, f"harness error: {report['harness_error']}"[:200])
    if report.get("tests_error"):
        return result(None, None, f"tests are invalid: {report['tests_error']}"[:200])
    score = passed_count / total if total else 0.0
    load = report.get("load")
    timeout = report.get("timeout")
    if load == "syntax_error":
        details["load_error"] = report.get("load_error")
        return result(False, 0.0, "syntax error")
    if timeout == "cpu":
        return result(False, score, f"timeout (cpu limit {limits.cpu_seconds:g}s)")
    if timeout == "memory":
        return result(False, score, f"memory limit ({limits.memory_bytes >> 20} MB) exceeded")
    if timeout == "wall" or run.timed_out or load == "timeout":
        return result(False, score, f"timeout (wall clock {limits.wall:g}s)")
    if load != "ok":
        details["load_error"] = report.get("load_error")
        return result(False, 0.0, f"code failed to load: {report.get('load_error') or load}"[:200])
    if not total:
        return result(None, None, "no tests found")
    if report.get("entry_point_missing") and passed_count < total:
        return result(False, score, f"entry point {entry_point!r} not defined")
    reason = f"{passed_count}/{total} tests passed"
    return result(passed_count == total, score, reason)
