"""Shared fixtures: stores on SQLite and on a real PostgreSQL, workspace files, the app.

PostgreSQL tests run against the server named by ASSAY_TEST_PG_URL (default: the
local service at 127.0.0.1:5432, trust auth). Each test gets its own database.
Where no server answers, those tests are skipped with the reason shown."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from curation.auth import AUTH_ENV, USER_ENV
from curation.store import open_store
from curation.store.db import dispose_engines
from tests.helpers import sample_records, write_jsonl
from tests.raycluster import LoopbackCluster, loopback_cluster, ray_unavailable

# Sign-in is off for the suite (every caller acts as an admin), and for the processes
# tests start (CLI, workers, the app), unless a test is marked `@pytest.mark.auth`.
os.environ.setdefault(AUTH_ENV, "none")


@pytest.fixture(autouse=True)
def _auth_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """`@pytest.mark.auth` tests run with sign-in on and no acting user named."""
    if request.node.get_closest_marker("auth") is not None:
        monkeypatch.delenv(AUTH_ENV, raising=False)
        monkeypatch.delenv(USER_ENV, raising=False)
    else:
        monkeypatch.setenv(AUTH_ENV, "none")


PG_ADMIN_URL = os.environ.get("ASSAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_problem: list[str | None] = []


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can (checked once)."""
    if not _pg_problem:
        try:
            import psycopg

            url = make_url(PG_ADMIN_URL)
            with psycopg.connect(
                host=url.host,
                port=url.port or 5432,
                user=url.username,
                dbname=url.database,
                connect_timeout=3,
            ):
                pass
            _pg_problem.append(None)
        except Exception as exc:  # noqa: BLE001 - any failure means "skip, and say why"
            _pg_problem.append(
                f"PostgreSQL not reachable at {make_url(PG_ADMIN_URL).render_as_string()}: {exc}"
            )
    return _pg_problem[0]


def _pg_admin(statement: str) -> None:
    import psycopg

    url = make_url(PG_ADMIN_URL)
    with psycopg.connect(
        host=url.host, port=url.port or 5432, user=url.username, dbname=url.database, autocommit=True
    ) as conn:
        conn.execute(statement)


@pytest.fixture
def make_store_url(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Factory: a fresh, empty store URL of the given backend ("sqlite" or "postgresql")."""
    created: list[str] = []

    def factory(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'store-{uuid.uuid4().hex[:8]}.db'}"
        problem = postgres_unavailable()
        if problem:
            pytest.skip(problem)
        name = f"assay_test_{uuid.uuid4().hex[:12]}"
        _pg_admin(f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    yield factory
    dispose_engines()
    for name in created:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, make_store_url: Callable[[str], str]) -> str:
    """A fresh store URL, once per backend."""
    return make_store_url(request.param)


@pytest.fixture
def engine(store_url: str) -> Engine:
    """A migrated store, once per backend."""
    return open_store(store_url)


@pytest.fixture
def sqlite_engine(make_store_url: Callable[[str], str]) -> Engine:
    """A migrated SQLite store, for tests that are not about the backend."""
    return open_store(make_store_url("sqlite"))


@pytest.fixture
def records_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a JSONL file of n valid math records."""

    def factory(n: int = 20, name: str = "batch.jsonl") -> Path:
        return write_jsonl(tmp_path / name, sample_records(n))

    return factory


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (the browser fixture screenshots failures)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def ray_two_nodes() -> Iterator[LoopbackCluster]:
    """One two-node Ray cluster on loopback (1 CPU each) shared by the session's tests.
    Tests that kill a node start their own with `loopback_cluster()`."""
    problem = ray_unavailable()
    if problem:
        pytest.skip(problem)
    with loopback_cluster(nodes=2, cpus_per_node=1) as cluster:
        yield cluster


@pytest.fixture
def ray_driver(ray_two_nodes: LoopbackCluster) -> Iterator[LoopbackCluster]:
    """This process connected to the shared two-node cluster as a job's driver would be;
    disconnected after the test."""
    from curation.executors import ExecutorChoice, connect, disconnect

    cluster = connect(ExecutorChoice.parse("ray", ray_two_nodes.address))
    ray_two_nodes.wait_for_cpus(2)
    try:
        yield ray_two_nodes
    finally:
        disconnect(cluster)
