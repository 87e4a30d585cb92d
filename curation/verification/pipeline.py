"""Running verifier chains over chunks of samples on every core.

Each verifier runs where it runs best:

* ``math_answer``: one `MathVerifyPool` of ``jobs`` worker processes (math-verify
  needs ``signal.alarm`` in a main thread, and a hard kill for runaway sympy),
  fed one chunk at a time from a driver thread;
* ``code_tests``: the code verifier's `verify_many` (a thread pool driving
  sandbox subprocesses), two chunks at a time;
* ``judge``: asyncio requests to the judge endpoint (I/O bound), from a driver thread;
* everything else (``quality``, ``ifeval``, ...): a `ProcessPoolExecutor` of
  ``jobs`` processes (forkserver: no fork of a threaded parent); with ``jobs=1``
  a thread of this process instead (one core gains nothing from a pool).

As with any use of process pools, a script that verifies must guard its entry
point with ``if __name__ == "__main__":`` (the pool re-imports the main module).

`ChainPipeline.submit` starts a chunk and returns at once; `ChainPipeline.collect`
waits for it. Callers keep a bounded number of chunks in flight and collect them
in order, so memory stays bounded and output order is input order.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from curation.data import SampleRecord
from curation.verification.base import Verdict, Verifier

#: Verifiers with their own batch API (everything else goes to the process pool).
BATCH_VERIFIERS: frozenset[str] = frozenset({"math_answer", "code_tests", "judge"})

_WORKER_VERIFIERS: dict[str, Verifier] = {}
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent dies (Linux; a no-op elsewhere).

    Pool processes otherwise outlive a verify job killed with SIGKILL: they block
    forever on their task queue, whose write end they hold themselves."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def _verify_in_worker(name: str, module: str, records: list[SampleRecord]) -> list[Verdict]:
    """Run in a pool process: one verifier over a list of records (never raises per record).
    `module` is where the verifier is defined (imported first, so verifiers registered
    outside `curation.verification` work too)."""
    verifier = _WORKER_VERIFIERS.get(name)
    if verifier is None:
        verifier = _WORKER_VERIFIERS[name] = _instantiate(name, module)
    return [safe_verify(verifier, record) for record in records]


def _instantiate(name: str, module: str) -> Verifier:
    import importlib

    from curation.verification import VERIFIERS

    if name not in VERIFIERS:
        importlib.import_module(module)
    return VERIFIERS.get(name)()


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


def _module_of(name: str) -> str:
    from curation.verification import VERIFIERS

    return VERIFIERS.get(name).__module__


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass
class Chunk:
    """One submitted chunk: records, which verifiers each needs, and the running work."""

    records: list[SampleRecord]
    todo: list[tuple[str, ...]]
    work: list[tuple[str, list[int], Future]] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)


class ChainPipeline:
    """Executors for verifier chains, created on first use and shut down by `close`."""

    def __init__(
        self, jobs: int | None = None, *, judge_config: Any = None, judge_api_key: str | None = None
    ):
        self.jobs = max(1, jobs or default_jobs())
        self.judge_config = judge_config
        self.judge_api_key = judge_api_key
        self._processes: ProcessPoolExecutor | None = None
        self._threads: dict[str, ThreadPoolExecutor] = {}
        self._math_pool: Any = None
        self._code: Any = None
        self._judge: Any = None
        self._local: dict[str, Verifier] = {}

    # -- executors --

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._processes is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["curation.verification.forkserver_init", "curation.verification"])
            self._processes = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=context, initializer=die_with_parent
            )
        return self._processes

    def _thread(self, name: str, workers: int = 1) -> ThreadPoolExecutor:
        if name not in self._threads:
            self._threads[name] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"verify-{name}")
        return self._threads[name]

    def _math(self) -> Any:
        if self._math_pool is None:
            from curation.mathcheck.pool import MathVerifyPool
            from curation.verification.math import MathAnswerVerifier

            self._math_pool = MathVerifyPool(jobs=self.jobs, config=MathAnswerVerifier().config)
        return self._math_pool

    def _code_verifier(self) -> Any:
        if self._code is None:
            from curation.verification.code import CodeTestsVerifier

            self._code = CodeTestsVerifier()
        return self._code

    def _judge_verifier(self) -> Any:
        if self._judge is None:
            from curation.verification.judge import JudgeVerifier

            self._judge = JudgeVerifier(self.judge_config, api_key=self.judge_api_key)
        return self._judge

    def _start(self, name: str, records: list[SampleRecord]) -> Future:
        if name == "math_answer":
            return self._thread("math").submit(self._math().verify_many, records)
        if name == "code_tests":
            return self._thread("code", 2).submit(self._code_verifier().verify_many, records, self.jobs)
        if name == "judge":
            return self._thread("judge").submit(self._judge_verifier().verify_many, records)
        if self.jobs == 1:
            return self._thread("local").submit(self._verify_here, name, records)
        return self._process_pool().submit(_verify_in_worker, name, _module_of(name), records)

    def _verify_here(self, name: str, records: list[SampleRecord]) -> list[Verdict]:
        verifier = self._local.get(name)
        if verifier is None:
            verifier = self._local[name] = _instantiate(name, _module_of(name))
        return [safe_verify(verifier, record) for record in records]

    # -- chunks --

    def submit(
        self, records: Sequence[SampleRecord], todo: Sequence[Sequence[str]], keys: Sequence[Any] = ()
    ) -> Chunk:
        """Start verifying `records[i]` with the verifiers named in `todo[i]`."""
        chunk = Chunk(list(records), [tuple(t) for t in todo], keys=list(keys))
        by_name: dict[str, list[int]] = {}
        for index, names in enumerate(chunk.todo):
            for name in names:
                by_name.setdefault(name, []).append(index)
        for name, indices in by_name.items():
            subset = [chunk.records[i] for i in indices]
            chunk.work.append((name, indices, self._start(name, subset)))
        return chunk

    def collect(self, chunk: Chunk) -> list[dict[str, Verdict]]:
        """Wait for a chunk: per record, {verifier: verdict}, in the order of `todo`."""
        results: list[dict[str, Verdict]] = [{} for _ in chunk.records]
        for name, indices, future in chunk.work:
            verdicts = future.result()
            if len(verdicts) != len(indices):
                raise RuntimeError(
                    f"verifier {name!r} returned {len(verdicts)} verdicts for {len(indices)} samples"
                )
            for index, verdict in zip(indices, verdicts, strict=True):
                results[index][name] = verdict
        return [
            {name: result[name] for name in names} for result, names in zip(results, chunk.todo, strict=True)
        ]

    def close(self) -> None:
        if self._processes is not None:
            self._processes.shutdown(wait=True, cancel_futures=True)
            self._processes = None
        for executor in self._threads.values():
            executor.shutdown(wait=True, cancel_futures=True)
        self._threads.clear()
        if self._math_pool is not None:
            self._math_pool.close()
            self._math_pool = None

    def __enter__(self) -> ChainPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def executor_kind(name: str) -> str:
    """Where a verifier runs (for reports): "math pool", "sandbox threads", "async", "processes"."""
    return {"math_answer": "math pool", "code_tests": "sandbox threads", "judge": "async requests"}.get(
        name, "processes"
    )


__all__ = ["BATCH_VERIFIERS", "ChainPipeline", "Chunk", "default_jobs", "executor_kind", "safe_verify"]
