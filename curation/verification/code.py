"""The code verifier: run the response against the reference tests in a sandbox.

``reference = {"tests": str, "entry_point": str?}``. Tests are either HumanEval style
(``def check(candidate): assert ...``, with `entry_point`, guessed from the prompt if
absent) or plain ``assert`` lines; each assert is reported as its own test.

Code only ever runs inside a bubblewrap sandbox (see `curation.sandbox`). Without
bubblewrap the verifier refuses (passed=None) unless explicitly allowed to run code
with rlimits only (``allow_unsandboxed=True`` or ``ASSAY_ALLOW_UNSANDBOXED_CODE=1``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from curation.data import SampleRecord
from curation.sandbox.bwrap import SandboxLimits
from curation.sandbox.execute import CodeJob, CodeResult, resolve_mode, run_many
from curation.sandbox.extract import extract_code, guess_entry_point, prompt_prelude
from curation.sandbox.mutants import Mutant, mutation_jobs, summarize
from curation.verification.base import VERIFIERS, Execution, RunSettings, Verdict, Verifier


@VERIFIERS.register("code_tests")
class CodeTestsVerifier(Verifier):
    name = "code_tests"
    version = "1"
    families = ("code",)
    execution = Execution.SANDBOX

    def __init__(
        self,
        *,
        cpu_seconds: float = 5.0,
        memory_mb: int = 1024,
        processes: int = 32,
        wall_seconds: float | None = None,
        allow_unsandboxed: bool | None = None,
        test_strength: bool = False,
        max_mutants: int = 12,
        weak_threshold: float = 1.0,
        jobs: int | None = None,
    ) -> None:
        """`test_strength`: also run the tests against mutants of passing solutions;
        tests scoring below `weak_threshold` (default: any surviving mutant) are
        flagged ``details["weak_tests"]``. `jobs`: concurrent sandboxes in
        `verify_many` (default two per core)."""
        self.limits = SandboxLimits(
            cpu_seconds=cpu_seconds,
            memory_bytes=memory_mb << 20,
            processes=processes,
            wall_seconds=wall_seconds,
        )
        self.allow_unsandboxed = allow_unsandboxed
        self.test_strength = test_strength
        self.max_mutants = max_mutants
        self.weak_threshold = weak_threshold
        self.jobs = jobs

    @classmethod
    def for_run(cls, settings: RunSettings) -> CodeTestsVerifier:
        """Sandboxes of a run: ``settings.jobs`` at once per chunk."""
        return cls(jobs=settings.jobs)

    def missing_dependencies(self) -> list[str]:
        _mode, problem = resolve_mode(self.allow_unsandboxed)
        return [problem] if problem else []

    def verify(self, sample: SampleRecord) -> Verdict:
        return self.verify_many([sample], jobs=1)[0]

    def verify_many(self, samples: Sequence[SampleRecord], jobs: int | None = None) -> list[Verdict]:
        """Verify samples concurrently (one sandbox each); verdicts in input order."""
        started = time.perf_counter()
        mode, problem = resolve_mode(self.allow_unsandboxed)
        verdicts: list[Verdict | None] = [None] * len(samples)
        todo: list[tuple[int, CodeJob, str]] = []
        for i, sample in enumerate(samples):
            prepared = self._prepare(sample)
            if isinstance(prepared, Verdict):
                verdicts[i] = prepared
            elif mode is None:
                verdicts[i] = Verdict(None, None, problem or "no sandbox", {"sandbox": None})
            else:
                todo.append((i, *prepared))
        workers = jobs or self.jobs
        if mode is not None and todo:
            results = run_many(
                [job for _i, job, _how in todo], workers=workers, limits=self.limits, mode=mode
            )
            strength = self._strength(todo, results, mode, workers) if self.test_strength else {}
            for (i, _job, how), result in zip(todo, results, strict=True):
                details = {**result.details, "code_source": how}
                if i in strength:
                    details["mutation"] = strength[i]
                    score = strength[i]["score"]
                    details["weak_tests"] = score is not None and score < self.weak_threshold
                verdicts[i] = Verdict(
                    result.passed, result.score, result.reason, details, details.get("wall_ms")
                )
        elapsed = round((time.perf_counter() - started) * 1000 / max(1, len(samples)), 1)
        out = []
        for verdict in verdicts:
            assert verdict is not None
            if verdict.duration_ms is None:
                verdict.duration_ms = elapsed
            out.append(verdict)
        return out

    def _prepare(self, sample: SampleRecord) -> tuple[CodeJob, str] | Verdict:
        reference = sample.reference or {}
        tests = reference.get("tests")
        if isinstance(tests, list) and all(isinstance(t, str) for t in tests):
            tests = "\n".join(tests)  # MBPP style: one assert per item
        if not isinstance(tests, str) or not tests.strip():
            return Verdict(None, None, "no tests in the reference", {})
        entry_point = reference.get("entry_point")
        if not isinstance(entry_point, str) or not entry_point:
            entry_point = guess_entry_point(sample.prompt) if "def check(" in tests else None
        if not sample.response.strip():
            return Verdict(False, 0.0, "empty response", {})
        code, how = extract_code(sample.response, sample.prompt, entry_point)
        return CodeJob(code, tests, entry_point, prompt_prelude(sample.prompt, entry_point)), how

    def _strength(
        self,
        todo: list[tuple[int, CodeJob, str]],
        results: list[CodeResult],
        mode: str,
        workers: int | None,
    ) -> dict[int, dict[str, Any]]:
        """Mutation scores of the tests of passing samples (a failing solution says
        nothing about its tests), all mutants of the batch run together. A mutant gets
        a few times the CPU the solution needed: mutants that loop forever are common."""
        batches: list[tuple[int, list[Mutant], list[CodeJob]]] = []
        for (i, job, _how), result in zip(todo, results, strict=True):
            if result.passed is not True:
                continue
            used = float(result.details.get("cpu_seconds") or 0.0)
            limits = replace(self.limits, cpu_seconds=min(self.limits.cpu_seconds, max(1.0, 4 * used + 0.5)))
            batches.append((i, *mutation_jobs(job, max_mutants=self.max_mutants, limits=limits)))
        flat = run_many([j for _i, _m, jobs in batches for j in jobs], workers=workers, mode=mode)
        out: dict[int, dict[str, Any]] = {}
        start = 0
        for i, mutants, jobs in batches:
            out[i] = summarize(mutants, flat[start : start + len(jobs)])
            start += len(jobs)
        return out
