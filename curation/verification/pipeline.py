"""Running verifier chains over chunks of samples on every core.

Each verifier runs where its class says (`Verifier.execution`, see `base.Execution`):

* ``PROCESS_POOL`` (``quality``, ``ifeval``, ...): a `ProcessPoolExecutor` of ``jobs``
  processes (forkserver: no fork of a threaded parent) shared by all such verifiers;
  with ``jobs=1`` a thread of this process instead (one core gains nothing from a pool);
* ``WORKER_POOL`` (``math_answer``: math-verify needs ``signal.alarm`` in a main thread,
  and a hard kill for runaway sympy), ``SANDBOX`` (``code_tests``: threads driving
  sandbox subprocesses) and ``REMOTE`` (``judge``: asyncio requests): the runner the
  verifier opens for the run (`Verifier.open_batch`), fed from a driver thread of its
  own, `Execution.chunks_at_once` chunks at a time.

The pipeline never names a verifier: a new one registered in `VERIFIERS` with its
`execution` runs without a change here.

As with any use of process pools, a script that verifies must guard its entry
point with ``if __name__ == "__main__":`` (the pool re-imports the main module).

`ChainPipeline.submit` starts a chunk and returns at once; `ChainPipeline.collect`
waits for it. Callers keep a bounded number of chunks in flight and collect them
in order (`ChainPipeline.in_order` does both), so memory stays bounded and output
order is input order.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from curation.data import SampleRecord
from curation.registry import Registry
from curation.verification.base import VERIFIERS, BatchRunner, Execution, RunSettings, Verdict, Verifier

#: How pool processes build their verifiers (one process is one job).
IN_POOL_PROCESS = RunSettings(jobs=1)
PR_SET_PDEATHSIG = 1

_POOL_VERIFIERS: dict[type[Verifier], Verifier] = {}


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent dies (Linux; a no-op elsewhere).

    Pool processes otherwise outlive a verify job killed with SIGKILL: they block
    forever on their task queue, whose write end they hold themselves."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def _verify_in_pool_process(verifier_class: type[Verifier], records: list[SampleRecord]) -> list[Verdict]:
    """Run in a pool process: one verifier over a list of records (never raises per record).
    The class travels by reference (module and name), so verifiers defined outside
    `curation.verification` work too."""
    verifier = _POOL_VERIFIERS.get(verifier_class)
    if verifier is None:
        verifier = _POOL_VERIFIERS[verifier_class] = verifier_class.for_run(IN_POOL_PROCESS)
    return verifier.verify_many(records)


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
    """Executors for verifier chains, created on first use and shut down by `close`.

    `verifiers` is the registry verifier names are looked up in (tests pass their own)."""

    def __init__(
        self,
        jobs: int | None = None,
        *,
        judge_config: Any = None,
        judge_api_key: str | None = None,
        verifiers: Registry[type[Verifier]] = VERIFIERS,
    ):
        self.jobs = max(1, jobs or default_jobs())
        self.settings = RunSettings(jobs=self.jobs, judge_config=judge_config, judge_api_key=judge_api_key)
        self.verifiers = verifiers
        self._processes: ProcessPoolExecutor | None = None
        self._threads: dict[str, ThreadPoolExecutor] = {}
        self._runners: dict[str, BatchRunner] = {}

    # -- executors --

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._processes is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["curation.verification.forkserver_init", "curation.verification"])
            self._processes = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=context, initializer=die_with_parent
            )
        return self._processes

    def _thread(self, name: str, workers: int) -> ThreadPoolExecutor:
        if name not in self._threads:
            self._threads[name] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"verify-{name}")
        return self._threads[name]

    def _runner(self, name: str, verifier_class: type[Verifier]) -> BatchRunner:
        if name not in self._runners:
            self._runners[name] = verifier_class.for_run(self.settings).open_batch(self.settings)
        return self._runners[name]

    def _start(self, name: str, records: list[SampleRecord]) -> Future:
        verifier_class = self.verifiers.get(name)
        execution = verifier_class.execution
        if execution is Execution.PROCESS_POOL:
            if self.jobs > 1:
                return self._process_pool().submit(_verify_in_pool_process, verifier_class, records)
            thread = "local"  # one thread for all of them: one core gains nothing from more
        else:
            thread = name
        runner = self._runner(name, verifier_class)
        return self._thread(thread, execution.chunks_at_once).submit(runner.verify_many, records)

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

    def in_order(
        self, chunks: Iterable[tuple[Sequence[SampleRecord], Sequence[Sequence[str]], Sequence[Any]]]
    ) -> Iterator[tuple[Chunk, list[dict[str, Verdict]]]]:
        """Verify `(records, todo, keys)` chunks with up to ``max(2, 2 * jobs)`` in flight;
        yield each chunk with its results (as `collect`), in input order."""
        window = max(2, 2 * self.jobs)
        inflight: deque[Chunk] = deque()
        for records, todo, keys in chunks:
            if len(inflight) >= window:
                oldest = inflight.popleft()
                yield oldest, self.collect(oldest)
            inflight.append(self.submit(records, todo, keys))
        while inflight:
            oldest = inflight.popleft()
            yield oldest, self.collect(oldest)

    def close(self) -> None:
        if self._processes is not None:
            self._processes.shutdown(wait=True, cancel_futures=True)
            self._processes = None
        for executor in self._threads.values():
            executor.shutdown(wait=True, cancel_futures=True)
        self._threads.clear()
        for runner in self._runners.values():
            runner.close()
        self._runners.clear()

    def __enter__(self) -> ChainPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ChainPipeline", "Chunk", "default_jobs", "die_with_parent"]
