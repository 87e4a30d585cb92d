"""The embedding fast path: LeanBert, its worker threads, and its fallbacks (offline models only)."""

from __future__ import annotations

import json
import random
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from curation.config import DEMO_DIR
from curation.diversity import dedup
from curation.diversity import embed as embed_module
from curation.diversity.embed import (
    Embedder,
    LeanBert,
    embedding_text,
    lean_bert_unsupported,
    resolve_model,
    worker_pool,
)

GSM8K = [json.loads(line) for line in (DEMO_DIR / "reference_math.jsonl").read_text().splitlines()]


def mixed_texts() -> list[str]:
    """Texts from 2 to 256+ tokens (truncated), shuffled so that length order and input order differ."""
    texts = [embedding_text(r["prompt"], r["response"]) for r in GSM8K[:40]]
    texts += ["", "short", "def f(x):\n    return x + 1", "word " * 400, "Tom has 3 apples."]
    random.Random(5).shuffle(texts)
    return texts


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return Embedder(cache_dir=tmp_path_factory.mktemp("embed-cache"))


@pytest.mark.parametrize(
    ("bf16", "lean", "threads"),
    [
        (True, True, 2),
        (True, True, 1),
        (False, True, 2),
        (True, False, 2),
        (False, False, 1),
    ],
)
def test_own_path_matches_the_baseline_row_by_row(
    minilm: Embedder, bf16: bool, lean: bool, threads: int
) -> None:
    texts = mixed_texts()
    baseline = minilm.encode_baseline(texts)
    minilm.threads = threads
    seen: list[tuple[int, int]] = []
    fast = minilm._encode_own(
        texts, bf16=bf16, lean=lean, progress=lambda done, total: seen.append((done, total))
    )
    cosine = (fast * baseline).sum(axis=1)
    # Row i must be text i's vector: a row out of order would have a cosine far below these.
    assert cosine.min() >= (0.999 if bf16 else 0.99999)
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    assert seen[-1] == (len(texts), len(texts)) and [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize("bf16", [True, False])
def test_fast_path_makes_the_same_semantic_dedup_decisions(minilm: Embedder, bf16: bool) -> None:
    rows = GSM8K[:60]
    texts = [embedding_text(r["prompt"], r["response"]) for r in rows]
    # Planted near-copies: a sentence added, or the prompt's first word dropped.
    texts += [t + " Please check your work." for t in texts[:10]]
    texts += [embedding_text(" ".join(r["prompt"].split()[1:]), r["response"]) for r in rows[10:20]]
    baseline = minilm.encode_baseline(texts)
    minilm.threads = 2
    fast = minilm._encode_own(texts, bf16=bf16, lean=True)
    # The test means something only if no pair sits on the threshold's edge.
    sims = baseline @ baseline.T
    np.fill_diagonal(sims, 0.0)
    assert not ((sims > 0.945) & (sims < 0.955)).any()
    decided = [{(f.index, f.other) for f in dedup.semantic_duplicates(x)} for x in (baseline, fast)]
    assert len(decided[0]) >= 10 and decided[0] == decided[1]


def test_batches_cover_every_row_once_and_feed_every_thread(minilm: Embedder) -> None:
    lengths = np.array([5, 80, 12, 12, 300, 7, 40, 2, 64, 9])
    minilm.threads = 2
    batches = minilm._batches(lengths)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert len(batches) >= 2
    assert all(len(b) * lengths[b].max() <= max(minilm.batch_tokens, lengths[b].max()) for b in batches)


def test_worker_threads_run_single_threaded_and_leave_the_caller_alone() -> None:
    before = torch.get_num_threads()
    pool = worker_pool(2)
    assert [pool.submit(torch.get_num_threads).result() for _ in range(4)] == [1, 1, 1, 1]
    assert torch.get_num_threads() == before
    later: list[int] = []
    thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert later == [before]


# -- architectures LeanBert does not know -------------------------------------------------------


def tiny_bert(path: Path, **config: Any) -> str:
    """A small random BERT as a sentence-transformers model folder, with MiniLM's tokenizer."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    settings = {
        "vocab_size": 30522,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "max_position_embeddings": 128,
        **config,
    }
    torch.manual_seed(0)
    BertModel(BertConfig(**settings)).save_pretrained(path / "bert")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(Path(resolve_model(None)) / name, path / "bert" / name)
    transformer = models.Transformer(str(path / "bert"), max_seq_length=128)
    SentenceTransformer(modules=[transformer, models.Pooling(64, "mean")], device="cpu").save(
        str(path / "st")
    )
    return str(path / "st")


def test_lean_bert_names_what_it_does_not_reproduce() -> None:
    from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel

    small = {
        "vocab_size": 100,
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    }
    assert lean_bert_unsupported(BertModel(BertConfig(**small))) is None
    assert "activation" in (lean_bert_unsupported(BertModel(BertConfig(**small, hidden_act="relu"))) or "")
    assert "decoder" in (lean_bert_unsupported(BertModel(BertConfig(**small, is_decoder=True))) or "")
    distil = DistilBertModel(DistilBertConfig(vocab_size=100, dim=32, n_layers=1, n_heads=2, hidden_dim=64))
    assert "not a BertModel" in (lean_bert_unsupported(distil) or "")
    with pytest.raises(ValueError):
        LeanBert(distil, torch.float32)


@pytest.mark.parametrize(("act", "forward"), [("gelu", "lean"), ("relu", "transformers")])
def test_unknown_architecture_runs_the_models_own_forward(tmp_path: Path, act: str, forward: str) -> None:
    embedder = Embedder(
        tiny_bert(tmp_path, hidden_act=act), backend="torch-fp32", threads=2, cache_dir=tmp_path
    )
    texts = mixed_texts()
    fast = embedder.encode(texts)
    assert embedder.forward_kind == forward
    assert ((fast * embedder.encode_baseline(texts)).sum(axis=1)).min() >= 0.99999


def test_calibration_drops_a_lean_forward_that_disagrees_with_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LeanBert that misreads a model is caught against plain fp32 encode, and the decision is cached."""
    model = tiny_bert(tmp_path)

    def wrong(self: LeanBert, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.randn(*input_ids.shape, self.hidden).to(self.dtype)

    monkeypatch.setattr(LeanBert, "__call__", wrong)
    texts = mixed_texts()
    embedder = Embedder(model, threads=2, cache_dir=tmp_path)
    fast = embedder.encode(texts)
    assert embedder.forward_kind == "transformers" and embedder.calibration["forward"] == "transformers"
    assert embedder.calibration["lean_fp32_mean_cosine"] < embed_module.LEAN_MIN_COSINE
    assert ((fast * embedder.encode_baseline(texts)).sum(axis=1)).mean() >= embed_module.MIN_COSINE
    again = Embedder(model, threads=2, cache_dir=tmp_path)
    again.encode(texts[:3])
    assert again.forward_kind == "transformers" and again.calibration == embedder.calibration
