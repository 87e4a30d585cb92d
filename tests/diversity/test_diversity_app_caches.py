"""Bug 5 of issue 10: the app server's embedder and neighbour-pool caches are bounded
(ASSAY_EMBEDDER_CACHE_MB, ASSAY_NEIGHBOUR_CACHE_MB; least recently used out first) and
thread-safe. Only public names of `curation.diversity` that predate the fix are used here,
so that these tests fail, rather than fail to import, on the code before it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from sqlalchemy import select

from curation.config import PROJECT_ROOT
from curation.diversity import embed as embed_module
from curation.diversity.embed import DEFAULT_MODEL, cache_key, encode_vectors
from curation.io.importer import import_file
from curation.store import open_store, session_scope
from curation.store.models import Embedding, Sample
from tests.helpers import ADMIN, sample_records, write_jsonl


class SlowEmbedder:
    """Stands in for Embedder: constructing one takes a moment, as loading a model does."""

    made: list[SlowEmbedder] = []
    approx_bytes = 1000

    def __init__(self, model: str, backend: str | None = None) -> None:
        SlowEmbedder.made.append(self)
        time.sleep(0.05)

    def load(self) -> None:
        pass


@pytest.fixture
def slow_embedders(monkeypatch):
    SlowEmbedder.made = []
    monkeypatch.setattr(embed_module, "Embedder", SlowEmbedder)
    embed_module._embedders.clear()
    yield SlowEmbedder.made
    embed_module._embedders.clear()


def test_threads_asking_for_the_same_embedder_get_one_instance_built_once(slow_embedders):
    start = threading.Barrier(8)
    got: list[object] = []

    def ask() -> None:
        start.wait()
        got.append(embed_module.get_embedder("some-model", "torch-fp32"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(slow_embedders) == 1
    assert len(got) == 8 and all(embedder is slow_embedders[0] for embedder in got)


def test_loaded_embedders_beyond_the_budget_are_dropped_least_recently_used_first(
    slow_embedders, monkeypatch
):
    monkeypatch.setattr(embed_module._embedders, "budget_bytes", 2 * SlowEmbedder.approx_bytes)
    first = embed_module.get_embedder("model-a")
    embed_module.get_embedder("model-b")
    embed_module.get_embedder("model-c")
    assert len(embed_module._embedders) == 2
    assert embed_module._embedders.total_bytes == 2 * SlowEmbedder.approx_bytes
    assert embed_module.get_embedder("model-a") is not first
    assert len(slow_embedders) == 4


#: A fresh process with both budgets at 1 MB: three neighbour pools of ~0.4 MB each (five
#: samples of 20,000 float32 dimensions), then three embedders said to weigh 0.4 MB each.
CHILD = """
import json, sys
from curation.diversity import embed, neighbours
from curation.store import open_store

class FakeEmbedder:
    approx_bytes = 400_000
    def __init__(self, model, backend=None):
        self.model = model
    def load(self):
        pass

embed.Embedder = FakeEmbedder
engine = open_store(sys.argv[1])
found = [len(neighbours.nearest_neighbours(engine, int(sample_id))) for sample_id in sys.argv[2:]]
for model in ("model-a", "model-b", "model-c"):
    embed.get_embedder(model)
print(json.dumps({"found": found, "pools": len(neighbours._pools), "embedders": len(embed._embedders)}))
"""


def test_the_cache_budgets_from_the_environment_bound_what_the_server_keeps(make_store_url, tmp_path):
    """One pool per batch and one embedder per model used to be kept for the life of the server."""
    url = make_store_url("sqlite")
    engine = open_store(url)
    for name in ("a", "b", "c"):
        import_file(engine, ADMIN, write_jsonl(tmp_path / f"{name}.jsonl", sample_records(5)), name)
    with session_scope(engine) as session:
        rows = session.execute(select(Sample.id, Sample.content_hash).order_by(Sample.id)).all()
    vectors = np.random.default_rng(0).standard_normal((5, 20_000)).astype(np.float32)
    with session_scope(engine) as session:
        for (_sample_id, content_hash), blob in zip(
            rows[:5], encode_vectors(vectors, "float32"), strict=True
        ):
            session.add(
                Embedding(model=cache_key(DEFAULT_MODEL), content_hash=content_hash, dim=20_000, vector=blob)
            )
    first_of_each_batch = [str(rows[i][0]) for i in (0, 5, 10)]
    env = {**os.environ, "ASSAY_NEIGHBOUR_CACHE_MB": "1", "ASSAY_EMBEDDER_CACHE_MB": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, *first_of_each_batch],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert json.loads(out.stdout.splitlines()[-1]) == {"found": [4, 4, 4], "pools": 2, "embedders": 2}
