"""``math_answer``: is the response's final answer equal to ``reference["answer"]``?

Extraction and parsing are math-verify's (``\\boxed{}``, "final answer is",
LaTeX and plain expressions); comparison is math-verify's symbolic check plus
this project's guards against its known false positives (`curation.mathcheck`):
exact rational / 50-digit comparison of numbers instead of 6-decimal rounding,
string comparison of answers it parses lossily (sequences, ratios, times),
textual fixes for ``\\mathrm{e}`` and ``\\sqrt(2)``, and a numeric spot check of
symbolic equalities.

Threads and time limits: every check runs in a worker process (see
`curation.mathcheck.pool`). `verify` uses a shared single-worker pool, so it is
safe to call from any thread and is bounded by the hard limit; `verify_many`
uses a pool of ``jobs`` workers for batches.

Verdicts: True "correct", False "wrong answer" / "no final answer found",
None "no reference answer" (self-consistency covers that case), "timeout",
"number too large to compare", "reference answer could not be parsed".
Details: ``extracted`` (the answer string), ``reference``, ``parsed_answer``,
``parsed_reference``, ``path`` (``numeric-exact``, ``numeric-evalf``, ``set/...``,
``interval/...``, ``symbolic``, ``symbolic+spot-check``, ``string``...), and
``mathverify`` (math-verify's own verdict, where it was asked).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import ClassVar

from curation.data import SampleRecord
from curation.mathcheck.config import MathCheckConfig
from curation.mathcheck.pool import MathVerifyPool, shared_pool
from curation.verification.base import VERIFIERS, BatchRunner, Execution, RunSettings, Verdict, Verifier

__all__ = ["MathAnswerVerifier", "MathCheckConfig", "verify_many"]


@VERIFIERS.register("math_answer")
class MathAnswerVerifier(Verifier):
    name: ClassVar[str] = "math_answer"
    version: ClassVar[str] = "1"
    families: ClassVar[tuple[str, ...]] = ("math",)
    execution: ClassVar[Execution] = Execution.WORKER_POOL

    def __init__(self, config: MathCheckConfig | None = None) -> None:
        self.config = config or MathCheckConfig()

    def missing_dependencies(self) -> list[str]:
        return [
            f"python package {module!r} is not installed"
            for module in ("math_verify", "sympy", "latex2sympy2_extended")
            if importlib.util.find_spec(module) is None
        ]

    def verify(self, sample: SampleRecord) -> Verdict:
        """Thread-safe: runs in the shared worker process, under the hard time limit."""
        return shared_pool(self.config).verify_many([sample])[0]

    def verify_many(self, samples: Sequence[SampleRecord], jobs: int = 2) -> list[Verdict]:
        return verify_many(samples, jobs, config=self.config)

    def open_batch(self, settings: RunSettings) -> BatchRunner:
        """A pool of ``settings.jobs`` math workers, kept open for the whole run."""
        return MathVerifyPool(jobs=settings.jobs, config=self.config)


def verify_many(
    samples: Sequence[SampleRecord], jobs: int = 2, *, config: MathCheckConfig | None = None
) -> list[Verdict]:
    """Verify a batch over ``jobs`` worker processes; one verdict per sample, in order.

    A sample still running after ``config.hard_timeout`` seconds gets
    ``passed=None, reason="timeout"`` and its worker is replaced; the others
    still get verdicts. Starting the workers costs about a second; to verify
    several batches, keep a `MathVerifyPool` open and call its ``verify_many``.
    """
    if not samples:
        return []
    with MathVerifyPool(jobs=max(1, min(jobs, len(samples))), config=config) as pool:
        return pool.verify_many(samples)
