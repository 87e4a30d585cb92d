"""Verification on a Ray cluster: the pipeline's execution modes mapped to Ray tasks.

`RayChainPipeline` keeps `ChainPipeline`'s chunks, window and in-order collection and
changes only where a verifier's work starts (`Verifier.execution`):

* ``SANDBOX`` (code): one task per sample (``num_cpus=1``), running the verifier's own
  sandboxed path on whichever node takes it;
* ``WORKER_POOL`` (math): tasks over small batches that hand the samples to the
  verifier's worker process, kept open in the Ray worker (math-verify's timeouts need
  the main thread of a process of their own, and a hard kill for runaway sympy);
* ``PROCESS_POOL`` (IFEval, heuristics): tasks over small batches;
* ``REMOTE`` (the judge): stays on the driver, as asyncio requests.

Exactly once: a task only computes verdicts and returns them. Ray retries a task whose
node died (``max_retries``), and a retried task returns the same kind of value; only the
driver (the job's worker process) writes, through the same `write_verdicts` transaction
keyed by (sample, verifier, version) as the local path. Nodes never open the store.

A node that cannot run a verifier (no bubblewrap, a missing package) fails the task
with `NodeCannotVerify`, naming the node and the install command, and the job fails
visibly instead of storing "unknown" verdicts.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from curation.data import SampleRecord
from curation.executors import ExecutorChoice, executor_record, ray_session
from curation.registry import Registry
from curation.verification.base import VERIFIERS, BatchRunner, Execution, Verdict, Verifier
from curation.verification.pipeline import IN_POOL_PROCESS, ChainPipeline

#: Samples per task for the batched modes: small enough to spread a chunk over the
#: cluster, large enough that Ray's per-task cost (about a millisecond) stays minor.
SAMPLES_PER_TASK = 32

#: Ray retries a task whose node died this many times before the job fails.
TASK_RETRIES = 3

_NODE_RUNNERS: dict[type[Verifier], BatchRunner] = {}


class NodeCannotVerify(RuntimeError):
    """A Ray node lacks what a verifier needs (bubblewrap, a package)."""


def _node_name() -> str:
    hostname = socket.gethostname()
    try:
        address = socket.gethostbyname(hostname)
    except OSError:
        return hostname
    return f"{hostname} ({address})"


def _node_runner(verifier_class: type[Verifier]) -> BatchRunner:
    """This Ray worker's runner for a verifier, opened once and kept for later tasks."""
    runner = _NODE_RUNNERS.get(verifier_class)
    if runner is None:
        verifier = verifier_class.for_run(IN_POOL_PROCESS)
        problems = verifier.missing_dependencies()
        if problems:
            raise NodeCannotVerify(
                f"node {_node_name()} cannot run verifier {verifier_class.name!r}: {'; '.join(problems)}"
            )
        runner = _NODE_RUNNERS[verifier_class] = verifier.open_batch(IN_POOL_PROCESS)
    return runner


def verify_on_node(verifier_class: type[Verifier], records: list[SampleRecord]) -> list[Verdict]:
    """The body of every verification task: one verifier over a few records, on the node
    that runs the task. Returns the verdicts; never touches the store."""
    return _node_runner(verifier_class).verify_many(records)


def _gathered(parts: Sequence[Future]) -> Future:
    """One future for the concatenated results of `parts`, in order (the first error wins)."""
    combined: Future = Future()
    remaining = [len(parts)]

    def done(_part: Future) -> None:
        if combined.done():
            return
        if _part.exception() is not None:
            combined.set_exception(_part.exception())
            return
        remaining[0] -= 1
        if remaining[0] == 0:
            combined.set_result([verdict for part in parts for verdict in part.result()])

    if not parts:
        combined.set_result([])
    for part in parts:
        part.add_done_callback(done)
    return combined


class RayChainPipeline(ChainPipeline):
    """`ChainPipeline` whose verifiers run as Ray tasks on the connected cluster (see the
    module docstring); `jobs` should be the cluster's CPUs, which sets the window of
    chunks in flight. The caller connects this process first (`executors.ray_session`)."""

    def __init__(
        self,
        jobs: int,
        *,
        judge_config: Any = None,
        judge_api_key: str | None = None,
        verifiers: Registry[type[Verifier]] = VERIFIERS,
        samples_per_task: int = SAMPLES_PER_TASK,
    ):
        super().__init__(jobs, judge_config=judge_config, judge_api_key=judge_api_key, verifiers=verifiers)
        import ray  # heavy optional dependency: only a Ray run pays for importing it

        self.samples_per_task = samples_per_task
        self._task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(verify_on_node)

    def _start(self, name: str, records: list[SampleRecord]) -> Future:
        verifier_class = self.verifiers.get(name)
        execution = verifier_class.execution
        if execution is Execution.REMOTE:
            return super()._start(name, records)
        size = 1 if execution is Execution.SANDBOX else self._batch_size(len(records))
        parts = [
            self._task.remote(verifier_class, records[start : start + size]).future()
            for start in range(0, len(records), size)
        ]
        return _gathered(parts)

    def _batch_size(self, count: int) -> int:
        """Spread a chunk over the cluster's CPUs, at most `samples_per_task` a task."""
        return max(1, min(self.samples_per_task, math.ceil(count / self.jobs)))


def cluster_cpus() -> int:
    import ray  # heavy optional dependency: only a Ray run pays for importing it

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


@contextmanager
def open_pipeline(
    choice: ExecutorChoice, jobs: int, *, judge_config: Any = None
) -> Iterator[tuple[ChainPipeline, dict[str, Any]]]:
    """The pipeline of `choice` and the job's executor record (`counters["executor"]`):
    local worker processes, or Ray tasks on the cluster (connected for the block)."""
    if not choice.is_ray:
        with ChainPipeline(jobs, judge_config=judge_config) as pipeline:
            yield pipeline, executor_record(choice)
        return
    with (
        ray_session(choice) as cluster,
        RayChainPipeline(cluster_cpus(), judge_config=judge_config) as pipeline,
    ):
        yield pipeline, executor_record(choice, cluster)


__all__ = ["NodeCannotVerify", "RayChainPipeline", "open_pipeline", "verify_on_node"]
