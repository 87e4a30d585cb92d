"""Diversity checks against a real store, with the bundled all-MiniLM-L6-v2 model (offline)."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, func, select, update

from curation.config import DEMO_DIR
from curation.diversity import embed as embed_module
from curation.diversity.embed import Embedder, cache_key, embedding_text
from curation.diversity.service import (
    Selection,
    collapse_for,
    compute_diversity,
    embed_selection,
    list_marks,
    load_samples,
    map_points,
    override_mark,
    resolve_batch,
    run_dedup,
)
from curation.io.importer import import_file
from curation.store.db import session_scope
from curation.store.models import Batch, Embedding, MetricSnapshot
from tests.helpers import ADMIN, as_user

GSM8K = [json.loads(line) for line in (DEMO_DIR / "reference_math.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module", autouse=True)
def embed_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Backend calibration goes to a temporary folder, not the workspace's data/cache."""
    saved = embed_module.CACHE_DIR
    embed_module.CACHE_DIR = tmp_path_factory.mktemp("embed-cache")
    embed_module._embedders.clear()
    yield
    embed_module.CACHE_DIR = saved
    embed_module._embedders.clear()


def add_batch(
    engine: Engine, tmp_path: Path, name: str, records: list[dict[str, Any]], origin: str = "synthetic"
) -> int:
    path = tmp_path / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}.jsonl"
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "id"}) + "\n" for r in records))
    return import_file(engine, ADMIN, path, name, origin=origin)["batch_id"]


def narrow_batch(n: int = 32, seed: int = 0) -> list[dict[str, Any]]:
    """One template, one topic: what a collapsing teacher produces."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(2, 50), rng.randint(2, 50)
        out.append(
            {
                "family": "math",
                "prompt": f"{rng.choice(['Tom', 'Ann', 'Raj', 'Li'])} has {a} apples. He buys {b} more apples. How many apples does he have now?",
                "response": f"He has {a} + {b} = {a + b} apples.\n#### {a + b}",
                "reference": {"answer": str(a + b)},
            }
        )
    return out


def near_copy(record: dict[str, Any]) -> dict[str, Any]:
    """The same sample with a sentence added at the end: not an exact copy, Jaccard ≥ 0.9."""
    return dict(record, response=record["response"] + " Please check your work.")


# -- embeddings ------------------------------------------------------------------------------


def test_embeddings_are_cached_by_model_and_content(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_id = add_batch(engine, tmp_path, "small", GSM8K[:6] + GSM8K[:2])
    first = embed_selection(engine, Selection(batch_ids=(batch_id,)))
    assert (first.samples, first.distinct, first.computed, first.cached) == (8, 6, 6, 0)
    with session_scope(engine, write=False) as session:
        rows = session.scalars(
            select(Embedding).where(Embedding.model == cache_key("all-MiniLM-L6-v2"))
        ).all()
    assert len(rows) == 6 and {r.dim for r in rows} == {384}
    vectors = np.stack([np.frombuffer(r.vector, dtype=np.float16).astype(np.float32) for r in rows])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-2)

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a cached text was embedded again")

    monkeypatch.setattr(Embedder, "encode", refuse)
    second = embed_selection(engine, Selection(batch_ids=(batch_id,)))
    assert (second.computed, second.cached) == (0, 6)
    # Another batch with the same texts reuses the same vectors.
    other = add_batch(engine, tmp_path, "same texts", GSM8K[:6])
    assert embed_selection(engine, Selection(batch_ids=(other,))).computed == 0


def test_text_modes_have_their_own_cache_keys() -> None:
    assert cache_key("all-MiniLM-L6-v2") == cache_key("sentence-transformers/all-MiniLM-L6-v2")
    assert cache_key("all-MiniLM-L6-v2", "prompt") != cache_key("all-MiniLM-L6-v2")
    assert embedding_text("Q", "A") == "Q\nA"
    assert embedding_text("Q", "A", "response") == "A"
    with pytest.raises(ValueError):
        embedding_text("Q", "A", "both")


@pytest.mark.parametrize("backend", ["torch-bf16", "torch-fp32", "auto"])
def test_fast_path_matches_fp32_vectors(backend: str, tmp_path: Path) -> None:
    texts = [embedding_text(r["prompt"], r["response"]) for r in GSM8K[:24]] + [
        "short",
        "def f(x):\n    return x + 1",
    ]
    embedder = Embedder(backend=backend, cache_dir=tmp_path)
    fast = embedder.encode(texts)
    baseline = embedder.encode_baseline(texts)
    cosine = (fast * baseline).sum(axis=1)
    assert cosine.mean() >= 0.99 and cosine.min() >= 0.98
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    if backend == "auto":
        assert embedder.backend in ("torch-bf16", "torch-fp32")
        record = json.loads(next(tmp_path.glob("calibration-*.json")).read_text())
        assert record["backend"] == embedder.backend
        if "mean_cosine" in record:
            assert record["backend"] == "torch-fp32" or record["mean_cosine"] >= 0.99


# -- deduplication -----------------------------------------------------------------------------


def test_near_duplicate_batch_gets_marks_and_the_duplicate_warning(engine: Engine, tmp_path: Path) -> None:
    add_batch(engine, tmp_path, "reference: math", GSM8K[:50], origin="real")
    originals = GSM8K[50:74]
    copies = [near_copy(r) for r in originals[:10]]
    batch_id = add_batch(engine, tmp_path, "teacher run", originals + copies + [GSM8K[3]])
    result = run_dedup(engine, "teacher run")
    assert result["findings"]["near_duplicate"] == 10
    assert result["findings"]["copy_of_real"] >= 1
    rows = load_samples(engine, Selection(batch_ids=(batch_id,)))
    ids = [int(i) for i in rows.ids]
    marks = list_marks(engine, batch_id)
    near = {m.sample_id: m for m in marks if m.kind == "near_duplicate"}
    assert set(near) == set(ids[24:34])
    for offset, sample_id in enumerate(ids[24:34]):
        mark = near[sample_id]
        assert mark.other_sample_id == ids[offset]  # points at the kept first copy
        assert "Jaccard" in mark.reason and f"#{ids[offset]}" in mark.reason and mark.score >= 0.8
    copy = [m for m in marks if m.kind == "copy_of_real" and m.sample_id == ids[34]]
    assert copy and "reference: math" in copy[0].reason
    report = compute_diversity(engine, Selection(batch_ids=(batch_id,))).report
    assert "duplicates" in {w.code for w in report.warnings}


def test_rerunning_dedup_keeps_marks_and_overrides(engine: Engine, tmp_path: Path) -> None:
    batch_id = add_batch(engine, tmp_path, "dups", GSM8K[:8] + GSM8K[:3])
    first = run_dedup(engine, "dups", scopes=("batch",), semantic=False)
    assert first["findings"]["exact_duplicate"] == 3 and first["marks"]["added"] == 3
    marks = list_marks(engine, batch_id)
    assert all("Exact duplicate" in m.reason for m in marks)
    override_mark(engine, as_user("ada"), marks[0].id)
    second = run_dedup(engine, "dups", scopes=("batch",), semantic=False)
    assert second["marks"] == {"added": 0, "updated": 3, "removed": 0}
    again = {m.id: m for m in list_marks(engine, batch_id)}
    assert set(again) == {m.id for m in marks}
    assert again[marks[0].id].overridden_by == "ada"
    override_mark(engine, as_user("ada"), marks[0].id, undo=True)
    assert list_marks(engine, batch_id)[0].overridden_by is None
    with pytest.raises(ValueError):
        override_mark(engine, as_user(" "), marks[0].id)


def test_decontamination_finds_a_planted_13_gram(engine: Engine, tmp_path: Path) -> None:
    eval_records = [{"family": "math", "prompt": r["prompt"], "response": ""} for r in GSM8K[60:66]]
    add_batch(engine, tmp_path, "gsm8k eval", eval_records, origin="eval")
    leaked = " ".join(GSM8K[62]["prompt"].split()[3:18])
    synthetic = [dict(r) for r in GSM8K[:5]]
    synthetic.append(
        {"family": "math", "prompt": f"Consider this: {leaked}. What follows?", "response": "It follows."}
    )
    batch_id = add_batch(engine, tmp_path, "maybe leaked", synthetic)
    result = run_dedup(engine, "maybe leaked", scopes=("eval",), semantic=False)
    assert result["findings"] == {"contamination": 1}
    (mark,) = list_marks(engine, batch_id)
    assert mark.kind == "contamination"
    assert "'gsm8k eval'" in mark.reason
    gram = re.search(r'13-gram "([^"]+)"', mark.reason).group(1)
    assert len(gram.split()) == 13 and gram in re.sub(r"[^\w\s]", "", leaked.lower())


# -- metrics, snapshots, collapse ----------------------------------------------------------


def test_narrowed_batch_warns_and_diverse_batch_does_not(engine: Engine, tmp_path: Path) -> None:
    add_batch(engine, tmp_path, "reference: math", GSM8K[:50], origin="real")
    diverse = add_batch(engine, tmp_path, "diverse", GSM8K[50:])
    narrow = add_batch(engine, tmp_path, "narrow", narrow_batch())
    good = compute_diversity(engine, Selection(batch_ids=(diverse,)))
    bad = compute_diversity(engine, Selection(batch_ids=(narrow,)))
    assert good.report.warnings == []
    codes = {w.code for w in bad.report.warnings}
    assert {"vendi", "spread", "coverage"} <= codes
    assert bad.report.metrics["vendi"]["ratio"] < 0.5 < good.report.metrics["vendi"]["ratio"]
    assert bad.reference == ["reference: math"] and bad.report.n_compared == 32
    with session_scope(engine, write=False) as session:
        snaps = session.scalars(select(MetricSnapshot).order_by(MetricSnapshot.id)).all()
    assert [(s.batch_id, s.scope) for s in snaps] == [(diverse, "batch"), (narrow, "batch")]
    assert snaps[1].metrics["warnings"] and snaps[1].model == "all-MiniLM-L6-v2"


def test_metrics_of_a_large_batch_embed_only_the_compared_sample(engine: Engine, tmp_path: Path) -> None:
    add_batch(engine, tmp_path, "reference: math", GSM8K[:20], origin="real")
    big = add_batch(engine, tmp_path, "big", GSM8K[20:80])
    result = compute_diversity(engine, Selection(batch_ids=(big,)))
    assert (result.report.n_synthetic, result.report.n_compared) == (60, 20) and result.report.sampled
    with session_scope(engine, write=False) as session:
        cached = session.scalar(select(func.count()).select_from(Embedding))
    assert cached == 40  # 20 reference + the 20 compared synthetic samples, not all 60
    again = compute_diversity(engine, Selection(batch_ids=(big,)))
    assert list(again.synthetic.ids) == list(result.synthetic.ids)  # the same seeded sample


def test_collapse_monitor_follows_the_lineage(engine: Engine, tmp_path: Path) -> None:
    add_batch(engine, tmp_path, "reference: math", GSM8K[:40], origin="real")
    ids = [add_batch(engine, tmp_path, f"gen {g}", GSM8K[40 + 10 * g : 50 + 10 * g]) for g in range(4)]
    trend = [(1.0, 0.9, 1.0), (0.9, 0.8, 0.6), (0.75, 0.6, 0.3), (0.6, 0.45, 0.0)]
    with session_scope(engine) as session:
        for g, batch_id in enumerate(ids):
            session.execute(
                update(Batch)
                .where(Batch.id == batch_id)
                .values(
                    generation=g,
                    parent_batch_id=ids[g - 1] if g else None,
                    lineage={"few_shot_from": "accepted" if g else "real", "real_share": trend[g][2]},
                )
            )
            vendi, coverage, _ = trend[g]
            session.add(
                MetricSnapshot(
                    batch_id=batch_id,
                    scope="batch",
                    model="all-MiniLM-L6-v2",
                    metrics={
                        "metrics": {
                            "vendi": {"ratio": vendi},
                            "coverage": {"synthetic": coverage},
                            "spread": {"ratio": 1.0},
                        }
                    },
                )
            )
    report = collapse_for(engine, "gen 2", compute_missing=False)
    assert report.root_name == "gen 0"
    assert [p.generation for p in report.points] == [0, 1, 2, 3]
    codes = {w.code for w in report.warnings}
    assert {"collapse_trend:vendi_ratio", "collapse_trend:coverage", "real_replaced"} <= codes
    assert "collapse_trend:spread_ratio" not in codes


def test_map_uses_reference_axes_and_caps_points(engine: Engine, tmp_path: Path) -> None:
    add_batch(engine, tmp_path, "reference: math", GSM8K[:30], origin="real")
    batch_id = add_batch(engine, tmp_path, "to map", narrow_batch(12))
    selection = Selection(batch_ids=(batch_id,))
    data = map_points(engine, selection, embed_missing=True)
    assert data.total == 42 and not data.sampled and data.method == "pca"
    assert data.source.count("real: reference: math") == 30
    assert set(data.decision) == {"undecided"} and len(data.cluster) == 42
    again = map_points(engine, selection)
    np.testing.assert_allclose(again.x, data.x, atol=1e-5)
    capped = map_points(engine, selection, max_points=10)
    assert capped.sampled and len(capped.x) == 10 and capped.total == 42


# -- jobs and command line ---------------------------------------------------------------------


def test_embed_job_and_cli(sqlite_engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from curation.cli import main
    from curation.jobs import run_job, submit_job

    engine = sqlite_engine
    add_batch(engine, tmp_path, "reference: math", GSM8K[:40], origin="real")
    add_batch(engine, tmp_path, "narrow", narrow_batch(20))
    job = run_job(engine, submit_job(engine, ADMIN, "embed", {"batch": "narrow"}))
    assert job.state == "succeeded" and job.result["computed"] == 20
    assert job.title == "Embed batch 'narrow'"
    url = engine.url.render_as_string(hide_password=False)
    assert main(["--db", url, "embed", "--reference"]) == 0
    assert "40 embedded" in capsys.readouterr().out
    assert main(["--db", url, "diversity", "--batch", "narrow"]) == 0
    out = capsys.readouterr().out
    assert "vendi" in out and "! coverage" in out
    assert main(["--db", url, "diversity", "--batch", "narrow", "--json", "--no-save"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_compared"] == 20 and {w["code"] for w in data["warnings"]} >= {"vendi", "spread"}
    assert main(["--db", url, "dedup", "--batch", "narrow", "--no-semantic"]) == 0
    assert "exact_duplicate" in capsys.readouterr().out
    assert main(["--db", url, "diversity", "--batch", "no such batch"]) == 1
    assert resolve_batch(engine, "narrow").origin == "synthetic"
