"""Embeddings on a real two-node Ray cluster on loopback: the actors embed, the driver
(this process, as the job's worker) writes the same cache the local path writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, delete, select

from curation.cli import main
from curation.config import DEMO_DIR
from curation.diversity.embed import cache_key, decode_vectors
from curation.diversity.service import Selection, embed_selection, load_samples
from curation.jobs import list_jobs, run_job, submit_job
from curation.store import open_store
from curation.store.db import session_scope
from curation.store.models import Embedding
from tests.diversity.test_diversity_store import add_batch, embed_cache  # noqa: F401 (module fixture)
from tests.helpers import ADMIN
from tests.raycluster import LoopbackCluster, needs_ray

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
    local = run_job(engine, submit_job(engine, ADMIN, "embed", {"batch": "ray"}))
    assert local.state == "succeeded" and local.result["computed"] == TEXTS
    assert local.counters["executor"] == {"executor": "local"}
    local_vectors = cached_vectors(engine)
    with session_scope(engine) as session:
        session.execute(delete(Embedding))

    params = {"batch": "ray", "executor": "ray", "ray_address": ray_driver.address}
    job = run_job(engine, submit_job(engine, ADMIN, "embed", params))

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
