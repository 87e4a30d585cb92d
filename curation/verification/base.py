"""The verifier interface: a named, versioned check of one sample, and how it runs.

Modelled on datatrove's filters: dependencies are checked up front
(`missing_dependencies`), heavy imports happen inside methods, and `verify`
returns a plain `Verdict`.

Each verifier class says how the verification pipeline (`pipeline.ChainPipeline`)
schedules it, in its `execution`; the pipeline asks the class, never the name, so a new
verifier needs no pipeline edit. A run builds one instance per verifier with
`for_run(settings)` and feeds it chunks of samples through `open_batch(settings)`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Protocol

from curation.data import SampleRecord, Verdict
from curation.registry import Registry


class Execution(Enum):
    """Where a verifier's work runs during a verification run."""

    #: Pure-Python CPU work: `verify` per sample in the run's shared pool of processes
    #: (a thread of this process when the run has one job). The pool builds the verifier
    #: again in each process, with `for_run(RunSettings(jobs=1))`.
    PROCESS_POOL = "processes"
    #: The verifier runs its own worker processes: `open_batch` returns a runner owning
    #: them for the whole run, fed one chunk at a time from a driver thread.
    WORKER_POOL = "worker pool"
    #: Model-written code in sandbox subprocesses, driven by threads of this process.
    SANDBOX = "sandbox threads"
    #: Requests to a remote endpoint (I/O bound), from a driver thread.
    REMOTE = "async requests"

    @property
    def chunks_at_once(self) -> int:
        """How many chunks the pipeline hands this verifier at the same time (sandboxes
        idle while a chunk's slowest program finishes, so two chunks overlap)."""
        return 2 if self is Execution.SANDBOX else 1


@dataclass(frozen=True)
class RunSettings:
    """What one verification run gives its verifiers: the worker processes to use and
    the judge endpoint (a `judge.JudgeConfig` or its dict form; None: the ``ASSAY_JUDGE_*``
    environment). `judge_api_key` overrides the key's environment variable (tests); it
    never leaves this process."""

    jobs: int = 1
    judge_config: Any = None
    judge_api_key: str | None = None


class BatchRunner(Protocol):
    """Verifies chunks of samples for the length of one run, then is closed."""

    def verify_many(self, samples: Sequence[SampleRecord]) -> list[Verdict]: ...

    def close(self) -> None: ...


def safe_verify(verifier: Verifier, record: SampleRecord) -> Verdict:
    """`verifier.verify(record)`, with a crash turned into a None verdict that says so."""
    started = time.perf_counter()
    try:
        verdict = verifier.verify(record)
    except Exception as exc:  # noqa: BLE001 - one bad sample must not sink the chunk
        verdict = Verdict(None, None, f"verifier error: {type(exc).__name__}: {exc}"[:500], {"error": True})
    if verdict.duration_ms is None:
        verdict.duration_ms = round((time.perf_counter() - started) * 1000.0, 3)
    return verdict


class Verifier(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    families: ClassVar[tuple[str, ...]] = ()
    execution: ClassVar[Execution] = Execution.PROCESS_POOL

    @classmethod
    def for_run(cls, settings: RunSettings) -> Verifier:
        """The instance a run uses (and asks for `missing_dependencies`); override to take
        what the run provides, e.g. the judge endpoint."""
        return cls()

    def missing_dependencies(self) -> list[str]:
        """Human-readable reasons this verifier cannot run here (empty = ready)."""
        return []

    @abstractmethod
    def verify(self, sample: SampleRecord) -> Verdict: ...

    def verify_many(self, samples: Sequence[SampleRecord]) -> list[Verdict]:
        """One verdict per sample, in order; a sample that crashes the check gets a None verdict."""
        return [safe_verify(self, sample) for sample in samples]

    def open_batch(self, settings: RunSettings) -> BatchRunner:
        """What verifies this verifier's chunks during a run: by default the instance
        itself (`verify_many`); a verifier with its own workers returns a runner owning them."""
        return self

    def close(self) -> None:  # noqa: B027 - optional hook: most verifiers hold nothing to release
        """Release what `open_batch` started (nothing by default)."""


VERIFIERS: Registry[type[Verifier]] = Registry("verifier")
