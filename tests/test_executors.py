"""The executor choice and the connection to a real Ray cluster (no mocks of Ray)."""

from __future__ import annotations

import argparse

import pytest

from curation.executors import (
    RAY_ADDRESS_ENV,
    ExecutorChoice,
    ExecutorKind,
    ExecutorUnavailable,
    add_executor_arguments,
    connect,
    disconnect,
    executor_from_args,
)
from tests.e2e.browser import free_port
from tests.raycluster import LoopbackCluster, needs_ray


@pytest.mark.parametrize(
    ("executor", "address", "env", "expected"),
    [
        (None, None, None, ExecutorChoice(ExecutorKind.LOCAL)),
        ("local", "10.0.0.1:6379", "10.0.0.2:6379", ExecutorChoice(ExecutorKind.LOCAL)),
        ("ray", None, None, ExecutorChoice(ExecutorKind.RAY, None)),
        ("ray", None, "10.0.0.2:6379", ExecutorChoice(ExecutorKind.RAY, "10.0.0.2:6379")),
        ("RAY", "auto", "10.0.0.2:6379", ExecutorChoice(ExecutorKind.RAY, "auto")),
    ],
)
def test_choice_from_flags_and_environment(
    monkeypatch: pytest.MonkeyPatch, executor: str | None, address: str | None, env: str | None, expected
) -> None:
    if env is None:
        monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(RAY_ADDRESS_ENV, env)
    choice = ExecutorChoice.parse(executor, address)
    assert choice == expected
    assert ExecutorChoice.from_params(choice.to_params()) == choice


def test_unknown_executor_is_named() -> None:
    with pytest.raises(ValueError, match="unknown executor 'dask'.*local, ray"):
        ExecutorChoice.parse("dask")


def test_cli_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    parser = argparse.ArgumentParser()
    add_executor_arguments(parser)
    assert executor_from_args(parser.parse_args([])) == ExecutorChoice(ExecutorKind.LOCAL)
    args = parser.parse_args(["--executor", "ray", "--ray-address", "127.0.0.1:1"])
    assert executor_from_args(args) == ExecutorChoice(ExecutorKind.RAY, "127.0.0.1:1")
    with pytest.raises(SystemExit):
        parser.parse_args(["--executor", "spark"])


@needs_ray
@pytest.mark.timeout(60)  # a hang guard: Ray alone would retry the address for minutes
@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}", "no-port-here"])
def test_wrong_address_fails_fast_and_names_it(address: str) -> None:
    address = address.format(port=free_port())
    with pytest.raises(ExecutorUnavailable) as raised:
        connect(ExecutorChoice.parse("ray", address))
    assert address in str(raised.value)


@needs_ray
def test_private_local_instance() -> None:
    cluster = connect(ExecutorChoice.parse("ray", None))
    try:
        assert cluster.started
        assert cluster.summary["nodes"] == 1
        assert cluster.summary["cpus"] >= 1
    finally:
        disconnect(cluster)


@needs_ray
def test_two_node_cluster_summary(ray_driver: LoopbackCluster) -> None:
    import ray

    from curation.executors import cluster_summary

    summary = cluster_summary()
    assert summary["nodes"] == 2
    assert summary["cpus"] == 2
    assert [node["cpus"] for node in summary["per_node"]] == [1, 1]

    @ray.remote(num_cpus=1)
    def package_file() -> str:
        import curation

        return curation.__file__

    import curation

    assert set(ray.get([package_file.remote() for _ in range(4)])) == {curation.__file__}


def test_job_record_describes_where_it_ran() -> None:
    from curation.executors import RayCluster, describe_record, executor_record

    assert describe_record(None) == "local worker processes"
    assert describe_record(executor_record(ExecutorChoice())) == "local worker processes"
    summary = {"nodes": 2, "cpus": 32, "gpus": 1, "per_node": []}
    record = executor_record(
        ExecutorChoice(ExecutorKind.RAY, "10.0.0.1:6379"), RayCluster("10.0.0.1:6379", False, summary)
    )
    assert describe_record(record) == "Ray at 10.0.0.1:6379: 2 nodes, 32 CPUs, 1 GPUs"
