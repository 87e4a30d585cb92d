"""Real Ray clusters on loopback for the scale-out tests: nodes are `ray start --block`
processes, each in its own process group, so a test can SIGKILL one node (its raylet,
object store and workers) the way a machine dies. Nothing here calls `ray stop`, which
would stop every Ray process on the machine, other tests' clusters included."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from tests.e2e.browser import free_port

#: Each node's object store; small, the tests move kilobytes.
NODE_OBJECT_STORE_BYTES = 128 * 1024 * 1024
START_TIMEOUT = 90.0


@dataclass
class LoopbackCluster:
    address: str
    temp_dir: str
    nodes: list[subprocess.Popen] = field(default_factory=list)

    def add_node(self, cpus: int = 1) -> subprocess.Popen:
        node = _ray_start([f"--address={self.address}", f"--num-cpus={cpus}"])
        self.nodes.append(node)
        return node

    def kill_node(self, node: subprocess.Popen) -> None:
        """SIGKILL a node's whole process group: raylet, object store and its workers."""
        _kill_group(node)

    def wait_for_cpus(self, cpus: int, timeout: float = START_TIMEOUT) -> None:
        """Until the cluster (as seen by a connected driver) has `cpus` CPUs alive."""
        import ray

        deadline = time.monotonic() + timeout
        while ray.cluster_resources().get("CPU", 0) < cpus:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster at {self.address} did not reach {cpus} CPUs")
            time.sleep(0.2)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            _kill_group(node)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _ray_start(arguments: list[str]) -> subprocess.Popen:
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    return subprocess.Popen(
        [
            ray,
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--object-store-memory={NODE_OBJECT_STORE_BYTES}",
            "--disable-usage-stats",
            *arguments,
        ],
        start_new_session=True,
        # Without RAY_AUTH_MODE, `ray start` turns token auth on whenever ~/.ray/auth_token
        # exists (any private `ray.init()` on the machine writes one), while a driver given
        # an explicit address never sends it: the test's driver would then be refused.
        env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_group(node: subprocess.Popen) -> None:
    try:
        os.killpg(node.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    node.wait(timeout=30)


def _wait_for_port(port: int, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Ray head on port {port} did not start") from None
            time.sleep(0.2)


@contextmanager
def loopback_cluster(nodes: int = 2, cpus_per_node: int = 1) -> Iterator[LoopbackCluster]:
    """A head plus `nodes - 1` workers on 127.0.0.1, stopped (killed) afterwards.

    The temp dir is private (and short: Ray's socket paths must fit 107 bytes), so
    `address="auto"` elsewhere on the machine never finds this cluster by accident."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    cluster = LoopbackCluster(address=f"127.0.0.1:{port}", temp_dir=temp_dir)
    cluster.nodes.append(
        _ray_start(
            [
                "--head",
                f"--port={port}",
                f"--num-cpus={cpus_per_node}",
                "--include-dashboard=false",
                f"--temp-dir={temp_dir}",
            ]
        )
    )
    try:
        _wait_for_port(port)
        for _ in range(nodes - 1):
            cluster.add_node(cpus_per_node)
        yield cluster
    finally:
        cluster.stop()


def ray_unavailable() -> str | None:
    try:
        import ray  # noqa: F401
    except ImportError:
        return "the 'ray' package is not installed (pip install -r requirements.txt)"
    return None


needs_ray = pytest.mark.skipif(ray_unavailable() is not None, reason=ray_unavailable() or "")
