"""Where the heavy jobs run: local worker processes (the default) or a Ray cluster.

Verification, embedding and dedup take an `ExecutorChoice`. With `local` they use
today's process pools. With `ray` the job's worker process (the *driver*) connects to a
cluster, sends the work out as Ray tasks or actors, and commits every result to the store
itself: Ray retries tasks, so only the driver writes, keyed as the local path is, and a
retried task can never write twice. Workers on the cluster never open the store.

The address comes from `--ray-address` or `ASSAY_RAY_ADDRESS`: `host:port` of a running
head (checked with a plain TCP connect first, so a wrong address fails in seconds with
its name instead of Ray retrying for minutes), `auto` to join the cluster running on this
machine, or nothing to start a private local Ray instance for the command.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

RAY_ADDRESS_ENV = "ASSAY_RAY_ADDRESS"

#: How long the TCP check of a `host:port` address waits before calling it unreachable.
CONNECT_CHECK_SECONDS = 5.0

#: Object store of a private local instance: small, so a laptop is not asked for 30 % of
#: its memory (Ray's default) to verify a batch.
LOCAL_OBJECT_STORE_BYTES = 512 * 1024 * 1024


class ExecutorKind(StrEnum):
    LOCAL = "local"
    RAY = "ray"


class ExecutorUnavailable(RuntimeError):
    """The chosen executor cannot run: no Ray installed, or no cluster at the address."""


@dataclass(frozen=True)
class ExecutorChoice:
    """`local`, or `ray` with an address (None: start a private local instance)."""

    kind: ExecutorKind = ExecutorKind.LOCAL
    address: str | None = None

    @classmethod
    def parse(cls, executor: str | None, address: str | None = None) -> ExecutorChoice:
        """From the CLI's `--executor`/`--ray-address` or a job's params; the address
        falls back to `ASSAY_RAY_ADDRESS`. Raises ValueError naming the bad value."""
        name = (executor or ExecutorKind.LOCAL.value).strip().lower()
        try:
            kind = ExecutorKind(name)
        except ValueError:
            known = ", ".join(k.value for k in ExecutorKind)
            raise ValueError(f"unknown executor {executor!r}; choose one of: {known}") from None
        if kind is ExecutorKind.LOCAL:
            return cls(kind)
        address = (address or os.environ.get(RAY_ADDRESS_ENV) or "").strip() or None
        return cls(kind, address)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ExecutorChoice:
        return cls.parse(params.get("executor"), params.get("ray_address"))

    def to_params(self) -> dict[str, Any]:
        """What a job stores in its params (the address, never credentials: Ray
        addresses carry none)."""
        if self.kind is ExecutorKind.LOCAL:
            return {"executor": self.kind.value}
        return {"executor": self.kind.value, "ray_address": self.address}

    @property
    def is_ray(self) -> bool:
        return self.kind is ExecutorKind.RAY

    def describe(self) -> str:
        if not self.is_ray:
            return "local worker processes"
        return f"Ray at {self.address}" if self.address else "Ray (a local instance for this command)"


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """`--executor local|ray` and `--ray-address ADDR`, the same on every heavy command."""
    parser.add_argument(
        "--executor",
        choices=[k.value for k in ExecutorKind],
        default=ExecutorKind.LOCAL.value,
        help="where the work runs: local worker processes (default) or a Ray cluster",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help=f"Ray head host:port, or 'auto' to join the cluster on this machine "
        f"(default: ${RAY_ADDRESS_ENV}; none starts a local Ray instance for the command)",
    )


def executor_from_args(args: argparse.Namespace) -> ExecutorChoice:
    return ExecutorChoice.parse(getattr(args, "executor", None), getattr(args, "ray_address", None))


def checked_executor_from_args(args: argparse.Namespace) -> ExecutorChoice:
    """The command's executor, its cluster address checked before any work starts; an
    unreachable one is a ValueError, which the CLI prints as "error: ..."."""
    choice = executor_from_args(args)
    if choice.is_ray and choice.address:
        try:
            check_reachable(choice.address)
        except ExecutorUnavailable as exc:
            raise ValueError(str(exc)) from None
    return choice


def check_reachable(address: str, timeout: float = CONNECT_CHECK_SECONDS) -> None:
    """Fail fast on a `host:port` nobody listens on (Ray itself retries for minutes)."""
    if address == "auto":
        return  # Ray finds the cluster this machine runs, and says so itself when there is none
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ExecutorUnavailable(
            f"Ray address {address!r} is not host:port, 'auto' or ray://host:port "
            f"(from --ray-address or {RAY_ADDRESS_ENV})"
        )
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ExecutorUnavailable(
            f"no Ray cluster at {address}: {exc.strerror or exc}. Start one with "
            f"'ray start --head', or fix --ray-address / {RAY_ADDRESS_ENV}"
        ) from None


@dataclass
class RayCluster:
    """A connection of this process to a Ray cluster; `started` when we made it."""

    address: str | None
    started: bool
    summary: dict[str, Any] = field(default_factory=dict)


def connect(choice: ExecutorChoice) -> RayCluster:
    """Connect this process (the job's driver) to the cluster of `choice`.

    Reuses a connection this process already has. Raises ExecutorUnavailable with the
    address in the message when the cluster cannot be reached."""
    if not choice.is_ray:
        raise ValueError("connect() is for the ray executor")
    try:
        import ray  # heavy optional dependency: only a Ray run pays for importing it
    except ImportError:
        raise ExecutorUnavailable(
            "the ray executor needs the 'ray' package: pip install -r requirements.txt"
        ) from None
    if ray.is_initialized():
        return RayCluster(choice.address, started=False, summary=cluster_summary())
    runtime_env = {"py_modules": [_package_dir()]}
    if choice.address:
        check_reachable(choice.address)
        try:
            ray.init(
                address=choice.address, logging_level="ERROR", log_to_driver=False, runtime_env=runtime_env
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ExecutorUnavailable(f"no Ray cluster at {choice.address}: {exc}") from None
        return RayCluster(choice.address, started=False, summary=cluster_summary())
    # "local" forces a private instance: a bare ray.init() would join any cluster that
    # happens to run on this machine.
    ray.init(
        address="local",
        num_cpus=os.cpu_count() or 1,
        include_dashboard=False,
        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        logging_level="ERROR",
        log_to_driver=False,
        runtime_env=runtime_env,
    )
    return RayCluster(None, started=True, summary=cluster_summary())


def disconnect(cluster: RayCluster) -> None:
    import ray  # heavy optional dependency: only a Ray run pays for importing it

    if ray.is_initialized():
        ray.shutdown()


@contextmanager
def ray_session(choice: ExecutorChoice) -> Iterator[RayCluster]:
    """Connected for the block; the private instance (if we started one) stops after."""
    cluster = connect(choice)
    try:
        yield cluster
    finally:
        disconnect(cluster)


def cluster_summary() -> dict[str, Any]:
    """Nodes alive and their CPUs/GPUs, for a job's record and the pages."""
    import ray  # heavy optional dependency: only a Ray run pays for importing it

    nodes = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        nodes.append(
            {
                "node_id": node.get("NodeID", "")[:12],
                "host": node.get("NodeManagerAddress", ""),
                "cpus": int(resources.get("CPU", 0)),
                "gpus": int(resources.get("GPU", 0)),
            }
        )
    return {
        "nodes": len(nodes),
        "cpus": sum(n["cpus"] for n in nodes),
        "gpus": sum(n["gpus"] for n in nodes),
        "per_node": nodes,
    }


def _package_dir() -> str:
    """Ray ships this `curation` package to every worker (`py_modules`), so a node runs
    the driver's code and needs only the same requirements installed."""
    return os.path.dirname(os.path.abspath(__file__))


def executor_record(choice: ExecutorChoice, cluster: RayCluster | None = None) -> dict[str, Any]:
    """What a job keeps under `counters["executor"]` so the pages can say where it ran:
    `{"executor": "local"}` or `{"executor": "ray", "ray_address": ..., "cluster": {...}}`."""
    record = choice.to_params()
    if cluster is not None:
        record["cluster"] = cluster.summary
    return record


def describe_record(record: dict[str, Any] | None) -> str:
    """One line for a page: "local worker processes" or "Ray at ADDR: 2 nodes, 2 CPUs, 0 GPUs"."""
    if not record or record.get("executor", ExecutorKind.LOCAL.value) == ExecutorKind.LOCAL.value:
        return ExecutorChoice().describe()
    where = ExecutorChoice.from_params(record).describe()
    cluster = record.get("cluster") or {}
    if not cluster:
        return where
    return f"{where}: {cluster.get('nodes', 0)} nodes, {cluster.get('cpus', 0)} CPUs, {cluster.get('gpus', 0)} GPUs"
