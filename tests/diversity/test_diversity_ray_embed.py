"""Embeddings on a real two-node Ray cluster on loopback: the actors embed, the driver
(this process, as the job's worker) writes the same cache the local path writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, delete, select

from curation.cli import main
from curation.config import DEMO_DIR
from curation.diversity.embed import cache_key, decode_vectors
from curation.diversity.ray_embed import RayEmbedPool
from curation.diversity.service import Selection, embed_selection, load_samples
from curation.executors import ExecutorChoice, connect, disconnect
from curation.jobs import list_jobs, run_job, submit_job
from curation.store import open_store
from curation.store.db import session_scope
from curation.store.models import Embedding
from tests.diversity.test_diversity_store import add_batch, embed_cache  # noqa: F401 (module fixture)
from tests.raycluster import LoopbackCluster, loopback_cluster, needs_ray

GSM8K = [json.loads(line) for line in (DEMO_DIR / "reference_math.jsonl").read_text().splitlines()]
TEXTS = 24

pytestmark = needs_ray


def cached_vectors(engine: Engine) -> dict[str, np.ndarray]:
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(Embedding.content_hash, Embedding.dim, Embedding.vector).where(
                Embedding.model == cache_key("all-MiniLM-L6-v2")
            )
        ).all()
    return {h: decode_vectors([blob], dim)[0] for h, dim, blob in rows}


@pytest.fixture
def pg_engine(make_store_url: Callable[[str], str]) -> Engine:
    """PostgreSQL here, SQLite in the other test: the driver's writes are the local
    path's, so each store is run once rather than every Ray test twice."""
    return open_store(make_store_url("postgresql"))


def test_ray_embed_fills_the_same_cache_as_the_local_path(
    pg_engine: Engine, tmp_path: Path, ray_driver: LoopbackCluster
) -> None:
    engine = pg_engine
    batch_id = add_batch(engine, tmp_path, "ray", GSM8K[:TEXTS])
    local = run_job(engine, submit_job(engine, "embed", {"batch": "ray"}))
    assert local.state == "succeeded" and local.result["computed"] == TEXTS
    assert local.counters["executor"] == {"executor": "local"}
    local_vectors = cached_vectors(engine)
    with session_scope(engine) as session:
        session.execute(delete(Embedding))

    params = {"batch": "ray", "executor": "ray", "ray_address": ray_driver.address}
    job = run_job(engine, submit_job(engine, "embed", params))

    assert job.state == "succeeded", job.error
    assert job.result["computed"] == TEXTS
    ray_vectors = cached_vectors(engine)
    assert (
        sorted(ray_vectors)
        == sorted(local_vectors)
        == sorted(set(load_samples(engine, Selection(batch_ids=(batch_id,))).content_hashes))
    )
    cosines = [float(local_vectors[h] @ ray_vectors[h]) for h in local_vectors]
    assert np.mean(cosines) >= 0.999
    record = job.counters["executor"]
    assert record["executor"] == "ray" and record["ray_address"] == ray_driver.address
    assert record["cluster"]["nodes"] == 2
    # CPU actors, one per CPU of the cluster, none lost
    assert job.result["ray"]["actors"] == record["cluster"]["cpus"] == 2
    assert job.result["ray"]["gpu"] is False and job.result["ray"]["lost_actors"] == 0


def test_resumed_ray_embed_embeds_only_what_is_missing(
    sqlite_engine: Engine, tmp_path: Path, ray_driver: LoopbackCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = sqlite_engine
    batch_id = add_batch(engine, tmp_path, "resume", GSM8K[:TEXTS])
    first_part = load_samples(engine, Selection(batch_ids=(batch_id,))).ids[: TEXTS // 3]
    before = embed_selection(engine, Selection(sample_ids=tuple(int(i) for i in first_part)))
    assert before.computed == len(first_part)

    url = engine.url.render_as_string(hide_password=False)
    code = main(
        ["--db", url, "embed", "--batch", "resume", "--executor", "ray", "--ray-address", ray_driver.address]
    )

    assert code == 0
    out = capsys.readouterr().out
    missing = TEXTS - len(first_part)
    assert f"{len(first_part):,} already cached, {missing:,} embedded" in out
    assert f"Ray at {ray_driver.address}: 2 nodes" in out
    assert len(cached_vectors(engine)) == TEXTS
    resumed = list_jobs(engine, kind="embed")[0]
    assert resumed.result["ray"]["texts_sent"] == missing


class KillOnFirstPiece:
    """The pool, with a node killed the moment the first piece reaches the driver (the
    other actor then still holds a piece), and every position handed to the driver kept
    to check that none came twice."""

    def __init__(self, pool: RayEmbedPool, kill: Callable[[], None]) -> None:
        self.pool = pool
        self.kill: Callable[[], None] | None = kill
        self.handed: list[int] = []

    @property
    def backend(self) -> str | None:
        return self.pool.backend

    def pieces(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for positions, vectors in self.pool.pieces(texts):
            if self.kill is not None:
                self.kill()
                self.kill = None
            self.handed.extend(int(p) for p in positions)
            yield positions, vectors


def test_a_node_killed_mid_job_loses_nothing_and_writes_nothing_twice(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine = sqlite_engine
    texts = 2 * TEXTS
    add_batch(engine, tmp_path, "kill", GSM8K[:texts])
    with loopback_cluster(nodes=2, cpus_per_node=1) as cluster:
        cluster_handle = connect(ExecutorChoice.parse("ray", cluster.address))
        try:
            cluster.wait_for_cpus(2)
            with RayEmbedPool(None, piece_texts=4) as pool:
                assert pool.wait_ready() == 2
                encoder = KillOnFirstPiece(pool, lambda: cluster.kill_node(cluster.nodes[-1]))
                stats = embed_selection(engine, Selection(), encoder=encoder)
        finally:
            disconnect(cluster_handle)

    assert stats.computed == texts
    assert sorted(encoder.handed) == list(range(texts))
    assert pool.stats.lost_actors == 1 and pool.stats.resent_pieces >= 1
    assert len(cached_vectors(engine)) == texts
