"""Vectors read through a memory-mapped float32 sidecar file (above `SPILL_ROWS` rows) are the
cached vectors, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from curation.diversity import dedup, service, vectorfile
from curation.diversity.embed import cache_key, encode_vectors
from curation.diversity.service import Selection, load_samples, load_vectors, run_dedup
from curation.io.importer import import_file
from curation.store.db import session_scope
from curation.store.models import Embedding
from tests.helpers import ADMIN

DIM = 16
KEY = cache_key("test-model")


@pytest.fixture(autouse=True)
def vector_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "vectors"
    monkeypatch.setenv(vectorfile.DIR_ENV, str(directory))
    return directory


def add_batch(engine: Engine, tmp_path: Path, n: int) -> int:
    """n samples; sample 7 repeats sample 3 word for word (one content hash, two rows)."""
    records = [{"family": "math", "prompt": f"question {i}", "response": f"answer {i}"} for i in range(n)]
    records[7] = dict(records[3])
    path = tmp_path / "batch.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return import_file(engine, ADMIN, path, "spill", origin="synthetic")["batch_id"]


def cache(
    engine: Engine, hashes: list[str], seed: int = 0, copy: tuple[int, int] | None = None
) -> dict[str, np.ndarray]:
    """Cache a random unit vector per hash (`copy` = (i, j): hash i gets a near copy of j's)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((len(hashes), DIM)).astype(np.float32)
    if copy is not None:
        x[copy[0]] = x[copy[1]] + 0.01 * rng.standard_normal(DIM)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    blobs = encode_vectors(x)
    with session_scope(engine) as session:
        session.add_all(
            Embedding(model=KEY, content_hash=h, dim=DIM, vector=b)
            for h, b in zip(hashes, blobs, strict=True)
        )
    return {
        h: np.frombuffer(b, dtype=np.float16).astype(np.float32) for h, b in zip(hashes, blobs, strict=True)
    }


def test_sidecar_matrix_equals_the_cached_vectors(engine: Engine, tmp_path: Path, vector_dir: Path) -> None:
    batch_id = add_batch(engine, tmp_path, 40)
    table = load_samples(engine, Selection(batch_ids=(batch_id,)))
    expected = cache(engine, sorted(set(table.content_hashes)))
    in_memory, present = load_vectors(engine, table, KEY)
    mapped, mapped_present = load_vectors(engine, table, KEY, spill_rows=10)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    assert present.all() and mapped_present.all()
    np.testing.assert_array_equal(mapped, in_memory)
    np.testing.assert_array_equal(mapped, np.stack([expected[h] for h in table.content_hashes]))
    assert [p.name for p in vector_dir.iterdir()] == [Path(mapped.filename).name]  # no partial file left
    again, _ = load_vectors(engine, table, KEY, spill_rows=10)  # reused, not rewritten
    assert Path(again.filename) == Path(mapped.filename)
    np.testing.assert_array_equal(again, in_memory)
    subset = table.subset(np.arange(20))
    other, _ = load_vectors(engine, subset, KEY, spill_rows=10)
    assert Path(other.filename) != Path(mapped.filename)
    np.testing.assert_array_equal(other, in_memory[:20])


def test_missing_vectors_fall_back_to_memory(engine: Engine, tmp_path: Path, vector_dir: Path) -> None:
    batch_id = add_batch(engine, tmp_path, 30)
    table = load_samples(engine, Selection(batch_ids=(batch_id,)))
    cache(engine, sorted(set(table.content_hashes))[:-1])
    vectors, present = load_vectors(engine, table, KEY, spill_rows=10)
    assert not isinstance(vectors, np.memmap)
    assert present.sum() == len(table) - 1
    assert not vector_dir.exists() or not list(vector_dir.iterdir())


def test_semantic_dedup_marks_the_same_through_the_sidecar(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vector_dir: Path
) -> None:
    batch_id = add_batch(engine, tmp_path, 60)
    table = load_samples(engine, Selection(batch_ids=(batch_id,)))
    hashes = [table.content_hashes[i] for i in (40, 20)]
    hashes += sorted(set(table.content_hashes) - set(hashes))
    vectors = cache(engine, hashes, copy=(0, 1))  # sample 40 is a near copy of sample 20
    found = dedup.semantic_duplicates(np.stack([vectors[h] for h in table.content_hashes]))
    assert {(f.index, f.other) for f in found} == {(7, 3), (40, 20)}
    kw = {"scopes": ("batch",), "model": "test-model"}
    before = run_dedup(engine, batch_id, **kw)
    assert not vector_dir.exists()
    monkeypatch.setattr(service, "SPILL_ROWS", 10)
    after = run_dedup(engine, batch_id, **kw)
    assert list(vector_dir.glob(f"*{vectorfile.SUFFIX}"))
    assert before["findings"] == after["findings"]
    assert before["findings"]["semantic_duplicate"] == 1


def test_prune_keeps_the_most_recent(tmp_path: Path) -> None:
    for i in range(6):
        path = tmp_path / f"m{i}{vectorfile.SUFFIX}"
        np.save(path, np.zeros((1, 2), dtype=np.float32))
        os.utime(path, (i, i))
    vectorfile.prune(tmp_path, keep=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"m{i}{vectorfile.SUFFIX}" for i in range(2, 6)]
