"""MinHash near-duplicates: words, recall, signatures in worker processes and Ray tasks,
stored signatures, and `dedup --executor ray` against a real two-node cluster."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from benchmarks.diversity import generate
from benchmarks.verify_instruction import build_samples
from curation.cli import main
from curation.diversity import dedup, minhash
from curation.diversity.service import list_marks, minhash_signatures_for, resolve_batch
from curation.diversity.text import normalised_words
from curation.executors import ExecutorChoice
from curation.jobs import get_job
from curation.store import open_store
from curation.store.db import session_scope
from curation.store.models import Job, MinHashSignature
from tests.diversity.test_diversity_store import GSM8K, add_batch, near_copy
from tests.raycluster import LoopbackCluster

PARAMS = minhash.MinHashParams()

MIXED = [
    "Ｈｅｌｌｏ wörld — Straße, STRASSE & strasse!",
    "ﬁne_print x² 你好 世界 naïve café CAFÉ",
    "",
    "   ...   ",
    "one",
    "Tab\tseparated\nlines, with 42 numbers and under_scores",
]


def test_words_are_the_words_of_normalised_words() -> None:
    """Same words as the regex tokeniser; equal words hash equal, different words differ."""
    hashes, offsets = minhash.word_hashes(MIXED)
    words = [normalised_words(text) for text in MIXED]
    assert list(np.diff(offsets)) == [len(w) for w in words]
    flat_words = [w for doc in words for w in doc]
    by_word: dict[str, int] = {}
    for word, value in zip(flat_words, hashes.tolist(), strict=True):
        assert by_word.setdefault(word, value) == value
    assert len(set(by_word.values())) == len(by_word)


def test_shingles_hashed_in_chunks_equal_one_pass() -> None:
    texts, _ = generate(500, seed=2)
    texts += MIXED
    whole = minhash.shingle_hashes(texts, chunk_texts=len(texts))
    chunked = minhash.shingle_hashes(texts, chunk_texts=7)
    assert len(whole[1]) == len(texts) + 1
    assert (whole[0] == chunked[0]).all() and (whole[1] == chunked[1]).all()


def test_recall_of_planted_near_duplicates_at_jaccard_0_8() -> None:
    texts, planted = generate(6000, seed=3)
    found = {f.index for f in dedup.near_duplicates(texts)}
    pairs = sorted(planted.items())
    sets = dedup.ShingleSets(*minhash.shingle_hashes([t for i, s in pairs for t in (texts[i], texts[s])]))
    due = {i for k, (i, _) in enumerate(pairs) if sets.jaccard(2 * k, 2 * k + 1) >= 0.8}
    assert len(due) > 100
    assert len(found & due) / len(due) >= 0.97


def test_the_estimate_prefilter_keeps_every_pair_of_a_templated_corpus() -> None:
    """Templated text (shared sentences in shuffled order) fills LSH buckets with candidates;
    dropping those whose MinHash estimate is far below the threshold loses none of the pairs
    the exact check would keep."""
    texts = [s.prompt + "\n" + s.response for s in build_samples(20_000, seed=4)]
    index = dedup.NearDupIndex.build(texts)
    candidates = len(index.candidate_pairs())
    exact = index.verified_pairs(0.8, margin=1.0)
    assert candidates > 20 * len(exact) > 0
    assert index.verified_pairs(0.8) == exact


def test_worker_processes_give_the_signatures_of_one_process() -> None:
    texts, _ = generate(900, seed=4)
    arrived: list[int] = []
    parallel = minhash.compute_signatures(
        texts, PARAMS, chunk_texts=200, parallel_min=0, on_chunk=lambda start, sig: arrived.append(start)
    )
    assert arrived == [0, 200, 400, 600, 800]
    assert (parallel == minhash.signatures_of_texts(texts, PARAMS)).all()


def test_ray_tasks_give_the_same_signatures_and_candidate_pairs(ray_driver: LoopbackCluster) -> None:
    texts, _ = generate(1200, seed=5)
    choice = ExecutorChoice.parse("ray", ray_driver.address)
    on_ray = minhash.compute_signatures(texts, PARAMS, choice, chunk_texts=150)
    local = minhash.compute_signatures(texts, PARAMS, chunk_texts=150, parallel_min=0)
    assert (on_ray == local).all()
    bands, rows = minhash.lsh_params(0.8, PARAMS.num_perm)
    pairs = minhash.lsh_candidate_pairs(local, bands, rows)
    assert len(pairs) and (minhash.lsh_candidate_pairs(on_ray, bands, rows) == pairs).all()


def _signature_rows(engine: Engine) -> int:
    with session_scope(engine, write=False) as session:
        return session.scalar(select(func.count()).select_from(MinHashSignature)) or 0


def test_a_rerun_signs_only_new_texts(engine: Engine) -> None:
    texts, _ = generate(400, seed=6)
    hashes = [f"h{i}" for i in range(len(texts))]
    first, stats = minhash_signatures_for(engine, hashes[:300], texts[:300], PARAMS, chunk_texts=128)
    assert (stats.stored, stats.computed) == (0, 300) and _signature_rows(engine) == 300
    # 100 new texts, and one old text twice: only the new ones are signed.
    again, stats = minhash_signatures_for(engine, hashes + hashes[:1], texts + texts[:1], PARAMS)
    assert (stats.distinct, stats.stored, stats.computed) == (400, 300, 100)
    assert _signature_rows(engine) == 400
    assert (again[:300] == first).all() and (again[400] == first[0]).all()
    assert (again[:400] == minhash.signatures_of_texts(texts, PARAMS)).all()
    other = minhash.MinHashParams(num_perm=64)
    _, stats = minhash_signatures_for(engine, hashes[:10], texts[:10], other)
    assert stats.computed == 10  # other parameters, other signatures


def _dedup_batch(engine: Engine, tmp_path: Path) -> None:
    add_batch(engine, tmp_path, "reference: math", GSM8K[:30], origin="real")
    originals = GSM8K[40:70]
    add_batch(engine, tmp_path, "run", originals + [near_copy(r) for r in originals[:8]] + [GSM8K[2]])


def _dedup(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[dict, list[tuple], dict, dict]:
    """(the job's counters["executor"], the batch's marks, the stored signatures, the job's result)."""
    assert main(["--db", url, "dedup", "--batch", "run", "--no-semantic", "--json", *extra]) == 0
    result = json.loads(capsys.readouterr().out)
    engine = open_store(url)
    marks = list_marks(engine, resolve_batch(engine, "run").id)
    with session_scope(engine, write=False) as session:
        job_id = session.scalar(select(Job.id).where(Job.kind == "dedup").order_by(Job.id.desc()))
        query = select(MinHashSignature.content_hash, MinHashSignature.signature)
        stored = {content_hash: blob for content_hash, blob in session.execute(query)}
    job = get_job(engine, job_id)
    found = [(m.sample_id, m.kind, m.other_sample_id, m.score) for m in marks]
    return job.counters["executor"], found, stored, result


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_dedup_on_a_two_node_ray_cluster_equals_the_local_run(
    backend: str,
    make_store_url: Callable[[str], str],
    ray_driver: LoopbackCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    urls = {}
    for executor in ("local", "ray"):
        urls[executor] = make_store_url(backend)
        _dedup_batch(open_store(urls[executor]), tmp_path)
    # The first run reuses this process's connection (ray_driver waited for both nodes);
    # the job ends it, so the rerun connects to the address itself.
    on_ray = ("--executor", "ray", "--ray-address", ray_driver.address)
    local_record, local_marks, local_signatures, _ = _dedup(urls["local"], capsys)
    ray_record, ray_marks, ray_signatures, result = _dedup(urls["ray"], capsys, *on_ray)
    assert local_record == {"executor": "local"}
    assert ray_record["executor"] == "ray" and ray_record["cluster"]["nodes"] == 2
    assert sum(kind == "near_duplicate" for _, kind, _, _ in local_marks) == 8
    assert any(kind == "copy_of_real" for _, kind, _, _ in local_marks)
    assert ray_marks == local_marks
    assert ray_signatures == local_signatures and result["minhash"]["computed"] == len(local_signatures) > 60
    _, again, _, rerun = _dedup(urls["ray"], capsys, *on_ray)
    assert again == local_marks and rerun["minhash"]["computed"] == 0
