"""The verification pipeline dispatches on the verifier class (`Verifier.execution`),
never on verifier names: a new verifier of each execution mode runs where its class
says, without a change to the pipeline."""

from __future__ import annotations

import ast
import inspect
import os
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from curation.data import SampleRecord, Verdict
from curation.registry import Registry
from curation.verification import VERIFIERS, pipeline
from curation.verification.base import BatchRunner, Execution, RunSettings, Verifier
from curation.verification.pipeline import ChainPipeline


def where() -> dict[str, Any]:
    return {"pid": os.getpid(), "thread": threading.current_thread().name}


class NewCheck(Verifier):
    """Passes a response of "yes"; its details say where it ran."""

    version: ClassVar[str] = "1"

    def verify(self, sample: SampleRecord) -> Verdict:
        return Verdict(sample.response == "yes", None, self.name, where())


class PooledCheck(NewCheck):
    name = "pooled_check"
    execution = Execution.PROCESS_POOL


class OwnWorkers:
    """A runner owning its workers for a run: records how it was opened, used and closed."""

    opened: ClassVar[list[OwnWorkers]] = []

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.chunks = 0
        self.closed = False
        OwnWorkers.opened.append(self)

    def verify_many(self, samples: Sequence[SampleRecord]) -> list[Verdict]:
        self.chunks += 1
        return [
            Verdict(s.response == "yes", None, "own workers", {**where(), "runner": id(self)})
            for s in samples
        ]

    def close(self) -> None:
        self.closed = True


class WorkerPoolCheck(NewCheck):
    name = "worker_pool_check"
    execution = Execution.WORKER_POOL

    def open_batch(self, settings: RunSettings) -> BatchRunner:
        return OwnWorkers(settings.jobs)


class SandboxedCheck(NewCheck):
    name = "sandboxed_check"
    execution = Execution.SANDBOX


class RemoteCheck(NewCheck):
    name = "remote_check"
    execution = Execution.REMOTE

    def __init__(self, endpoint: Any = None, api_key: str | None = None) -> None:
        self.endpoint = endpoint
        self.api_key = api_key

    @classmethod
    def for_run(cls, settings: RunSettings) -> RemoteCheck:
        return cls(settings.judge_config, settings.judge_api_key)

    def verify(self, sample: SampleRecord) -> Verdict:
        verdict = super().verify(sample)
        verdict.details.update(endpoint=self.endpoint, has_key=self.api_key is not None)
        return verdict


NEW_CHECKS: tuple[type[NewCheck], ...] = (PooledCheck, WorkerPoolCheck, SandboxedCheck, RemoteCheck)


def registry() -> Registry[type[Verifier]]:
    """The new checks only, in a registry of their own (the global one stays as it is)."""
    checks: Registry[type[Verifier]] = Registry("verifier")
    for check in NEW_CHECKS:
        checks.register(check.name)(check)
    return checks


def records(n: int) -> list[SampleRecord]:
    return [SampleRecord(family="open", prompt=f"p{i}", response="yes" if i % 3 else "no") for i in range(n)]


def run_chunks(jobs: int, names: Sequence[str], chunks: int = 3, size: int = 4, **settings: Any) -> list:
    """Verify `chunks` chunks with the verifiers `names`; results per chunk, in order."""
    with ChainPipeline(jobs, verifiers=registry(), **settings) as pipe:
        work = [(batch, [tuple(names)] * len(batch), ()) for batch in (records(size) for _ in range(chunks))]
        return [results for _chunk, results in pipe.in_order(work)]


@pytest.mark.parametrize(
    "name, execution",
    [
        ("quality", Execution.PROCESS_POOL),
        ("ifeval", Execution.PROCESS_POOL),
        ("math_answer", Execution.WORKER_POOL),
        ("code_tests", Execution.SANDBOX),
        ("judge", Execution.REMOTE),
    ],
)
def test_each_check_says_how_it_runs(name, execution):
    assert VERIFIERS.get(name).execution is execution


def test_the_pipeline_names_no_verifier():
    """No registered verifier's name appears in the pipeline's code (docstrings aside)."""
    tree = ast.parse(inspect.getsource(pipeline))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    strings = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }
    assert not strings & set(VERIFIERS)


def test_a_new_process_pool_check_runs_in_pool_processes():
    results = run_chunks(2, ["pooled_check"])
    verdicts = [result["pooled_check"] for chunk in results for result in chunk]
    assert [v.passed for v in verdicts] == [r.response == "yes" for _ in range(3) for r in records(4)]
    assert all(v.details["pid"] != os.getpid() for v in verdicts), "not run in this process"


def test_a_new_process_pool_check_runs_here_with_one_job():
    results = run_chunks(1, ["pooled_check"])
    verdicts = [result["pooled_check"] for chunk in results for result in chunk]
    assert {v.details["pid"] for v in verdicts} == {os.getpid()}
    assert {v.details["thread"].rsplit("_", 1)[0] for v in verdicts} == {"verify-local"}


def test_a_new_worker_pool_check_gets_one_runner_for_the_run():
    OwnWorkers.opened.clear()
    results = run_chunks(3, ["worker_pool_check"], chunks=4)
    verdicts = [result["worker_pool_check"] for chunk in results for result in chunk]
    assert len(OwnWorkers.opened) == 1, "opened once for the whole run"
    runner = OwnWorkers.opened[0]
    assert (runner.jobs, runner.chunks, runner.closed) == (3, 4, True)
    assert {v.details["runner"] for v in verdicts} == {id(runner)}
    assert {v.details["thread"].rsplit("_", 1)[0] for v in verdicts} == {"verify-worker_pool_check"}


def test_a_new_sandboxed_check_is_driven_by_threads_two_chunks_at_once():
    results = run_chunks(2, ["sandboxed_check"])
    verdicts = [result["sandboxed_check"] for chunk in results for result in chunk]
    assert {v.details["pid"] for v in verdicts} == {os.getpid()}
    assert {v.details["thread"].rsplit("_", 1)[0] for v in verdicts} == {"verify-sandboxed_check"}
    assert Execution.SANDBOX.chunks_at_once == 2
    assert all(e.chunks_at_once == 1 for e in Execution if e is not Execution.SANDBOX)


def test_a_new_remote_check_gets_the_run_settings():
    endpoint = {"base_url": "http://127.0.0.1:9/v1", "model": "m"}
    results = run_chunks(2, ["remote_check"], judge_config=endpoint, judge_api_key="sk-test")
    verdicts = [result["remote_check"] for chunk in results for result in chunk]
    assert all(v.details["endpoint"] == endpoint and v.details["has_key"] for v in verdicts)
    assert {v.details["thread"].rsplit("_", 1)[0] for v in verdicts} == {"verify-remote_check"}


def test_every_mode_in_one_chunk_keeps_each_records_verifiers_and_order():
    batch = records(7)
    todo = [tuple(c.name for c in NEW_CHECKS[: 1 + i % len(NEW_CHECKS)]) for i in range(len(batch))]
    with ChainPipeline(2, verifiers=registry()) as pipe:
        results = pipe.collect(pipe.submit(batch, todo))
    for record, names, result in zip(batch, todo, results, strict=True):
        assert tuple(result) == names
        assert all(verdict.passed is (record.response == "yes") for verdict in result.values())


def test_a_crashing_check_gives_an_unknown_verdict_not_a_failed_chunk():
    class Crashes(NewCheck):
        name = "crashes"

        def verify(self, sample: SampleRecord) -> Verdict:
            raise ZeroDivisionError("boom")

    verdicts = Crashes().verify_many(records(2))
    assert [(v.passed, v.reason) for v in verdicts] == [(None, "verifier error: ZeroDivisionError: boom")] * 2
