"""MinHash near-duplicate machinery: word shingles, signatures, LSH bands (no store here).

A signature is a pure function of (text, `MinHashParams`), so it can be computed
anywhere — in this process, in forked worker processes, or as Ray tasks on other
machines — and stored by content hash: the same text gives the same signature, and
the same signatures give the same LSH candidate pairs whichever executor made them.

Speed (issue 14): every step is a few numpy passes over a chunk of texts.

* Words: texts are normalised as `text.normalised_words` does (NFKC + casefold; ASCII
  takes `lower()`, the same result), joined by a newline and read as UTF-32 code
  points; a word is a run of `\\w` code points (the regex's own answer, asked once per
  distinct non-ASCII code point). Each word's 64-bit hash is a polynomial of its code
  points, mixed (splitmix64), so no Python string is made per word.
* Shingles: word `ngram`-grams hashed as `text.token_ngram_hashes` does.
* Signatures: permutation k maps a shingle's 32-bit value x to (a_k·x + b_k) mod 2³²
  (a_k odd, so a bijection); the minimum per document is taken with
  `np.minimum.reduceat` on a (permutations × shingles) block small enough to stay in
  the CPU cache — about 20× faster than the former 64-bit (shingles × permutations)
  blocks.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from curation.diversity.text import token_ngram_hashes
from curation.executors import ExecutorChoice

#: Texts per chunk sent to a worker process or Ray task.
CHUNK_TEXTS = 20_000
#: Fewer texts than this are signed in this process (a pool costs more than it saves).
PARALLEL_MIN_TEXTS = 40_000
#: LSH bands × rows are chosen so that a pair exactly at the threshold becomes a
#: candidate with at least this probability (pairs above it: more).
LSH_RECALL_AT_THRESHOLD = 0.97
#: Within an LSH bucket, all pairs are checked up to this size; bigger buckets
#: (templated data) are checked against their first and previous member only.
ALL_PAIRS_BUCKET = 32
#: Candidate pairs whose signature agreement is computed at a time (two 128-column uint32
#: rows each: 256 MB a block).
AGREEMENT_BLOCK = 262_144
#: Texts whose shingles are hashed at a time (see `shingle_hashes`).
SHINGLE_CHUNK_TEXTS = 16_384
#: Shingles per signature block: 128 permutations × 4096 × 4 bytes = 2 MB, cache-sized.
_BLOCK_SHINGLES = 4096
#: Texts turned into words and shingles at a time inside one chunk.
_SLICE_TEXTS = 2000
_EMPTY = np.iinfo(np.uint32).max
_WORD = re.compile(r"\w")
_ASCII_WORD = np.array([bool(_WORD.match(chr(c))) for c in range(128)])
#: bytes.translate table: an ASCII word character → 1, anything else → 0.
_ASCII_FLAGS = bytes(int(_ASCII_WORD[c]) if c < 128 else 0 for c in range(256))
_SEPARATOR = "\n"
#: Base of the polynomial hash of a word's code points (a fixed random odd 64-bit number).
_WORD_BASE = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class MinHashParams:
    """What a signature depends on; `key` names stored signatures of these parameters.

    `scheme` changes whenever the way a signature is computed from a text changes, so
    signatures stored by an older version are never mixed with new ones."""

    num_perm: int = 128
    ngram: int = 5
    seed: int = 1
    scheme: int = 2

    @property
    def key(self) -> str:
        return f"minhash-v{self.scheme}:w{self.ngram}:p{self.num_perm}:s{self.seed}"


# -- words and shingles ------------------------------------------------------------------


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array (returned)."""
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _is_word(codepoints: np.ndarray) -> np.ndarray:
    """`\\w` per code point, exactly as the regex decides."""
    out = _ASCII_WORD[np.minimum(codepoints, 127)]
    wide = codepoints >= 128
    if wide.any():
        distinct, inverse = np.unique(codepoints[wide], return_inverse=True)
        out[wide] = np.array([bool(_WORD.match(chr(c))) for c in distinct.tolist()])[inverse]
    return out


def word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash of every word, offsets): document d's words are [offsets[d], offsets[d+1]).

    Words are those of `text.normalised_words`; the hash depends on the word only."""
    normalised = [t.lower() if t.isascii() else unicodedata.normalize("NFKC", t).casefold() for t in texts]
    lengths = np.fromiter(map(len, normalised), dtype=np.int64, count=len(normalised))
    doc_start = np.zeros(len(normalised) + 1, dtype=np.int64)
    np.cumsum(lengths + 1, out=doc_start[1:])
    joined = _SEPARATOR.join(normalised)
    flags = np.zeros(len(joined) + 2, dtype=np.int8)
    if joined.isascii():
        # One byte per character; bytes.translate marks word characters at C speed.
        encoded = joined.encode("ascii")
        codepoints = np.frombuffer(encoded, dtype=np.uint8)
        flags[1:-1] = np.frombuffer(encoded.translate(_ASCII_FLAGS), dtype=np.int8)
    else:
        codepoints = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        flags[1:-1] = _is_word(codepoints)
    edges = np.diff(flags)
    starts = np.flatnonzero(edges == 1)
    word_len = np.flatnonzero(edges == -1) - starts
    offsets = np.searchsorted(starts, doc_start).astype(np.int64)
    if not len(starts):
        return np.zeros(0, dtype=np.uint64), offsets
    chars = codepoints[flags[1:-1].view(bool)].astype(np.uint64)
    first_char = np.zeros(len(starts), dtype=np.int64)
    np.cumsum(word_len[:-1], out=first_char[1:])
    # Position of each character in its word: a running count that drops back at each word start.
    step = np.ones(len(chars), dtype=np.int32)
    step[first_char[1:]] = 1 - word_len[:-1]
    step[0] = 0
    position = np.cumsum(step, dtype=np.int32)
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(int(word_len.max()), _WORD_BASE, dtype=np.uint64))
        chars *= powers[position]
        hashes = np.add.reduceat(chars, first_char) + word_len.astype(np.uint64)
    return _mix64(hashes), offsets


def shingle_hashes(
    texts: Sequence[str], ngram: int = 5, *, chunk_texts: int = SHINGLE_CHUNK_TEXTS
) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, offsets) of every word `ngram`-gram of every text; a text with fewer
    words (but at least one) gives one hash of all its words. Texts are hashed
    `chunk_texts` at a time: `word_hashes` holds about 40 bytes per character while it
    works (27 GB for a million texts of 700 characters at once)."""
    hashes: list[np.ndarray] = []
    offsets: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
    done = 0
    for start in range(0, len(texts), chunk_texts):
        tokens, token_offsets = word_hashes(texts[start : start + chunk_texts])
        part, part_offsets = token_ngram_hashes(tokens, token_offsets, ngram, short_docs="whole")
        hashes.append(part)
        offsets.append(part_offsets[1:] + done)
        done += len(part)
    if not hashes:
        return np.zeros(0, dtype=np.uint64), offsets[0]
    return np.concatenate(hashes), np.concatenate(offsets)


# -- signatures --------------------------------------------------------------------------


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def minhash_signatures(
    hashes: np.ndarray, offsets: np.ndarray, num_perm: int = 128, seed: int = 1
) -> np.ndarray:
    """(n_docs, num_perm) uint32 MinHash signatures from flat shingle hashes.

    Documents without shingles keep the all-max row (`empty_rows` finds them)."""
    n_docs = len(offsets) - 1
    sig = np.full((num_perm, n_docs), _EMPTY, dtype=np.uint32)
    counts = np.diff(offsets)
    if not len(hashes):
        return np.ascontiguousarray(sig.T)
    a, b = _permutations(num_perm, seed)
    values = ((hashes >> np.uint64(32)) ^ hashes).astype(np.uint32)
    block = np.empty((num_perm, 2 * _BLOCK_SHINGLES), dtype=np.uint32)
    start_doc = 0
    while start_doc < n_docs:
        end_doc = int(np.searchsorted(offsets, offsets[start_doc] + _BLOCK_SHINGLES, side="right")) - 1
        end_doc = min(max(end_doc, start_doc + 1), n_docs)
        lo, hi = int(offsets[start_doc]), int(offsets[end_doc])
        docs = np.arange(start_doc, end_doc)[counts[start_doc:end_doc] > 0]
        if len(docs):
            if hi - lo > block.shape[1]:
                block = np.empty((num_perm, hi - lo), dtype=np.uint32)
            view = block[:, : hi - lo]
            with np.errstate(over="ignore"):
                np.multiply(a[:, None], values[None, lo:hi], out=view)
                view += b[:, None]
            sig[:, docs] = np.minimum.reduceat(view, offsets[docs] - lo, axis=1)
        start_doc = end_doc
    return np.ascontiguousarray(sig.T)


def signatures_of_texts(texts: Sequence[str], params: MinHashParams) -> np.ndarray:
    """The signature of each text: the unit of work of a worker process or Ray task.

    Done `_SLICE_TEXTS` texts at a time: the per-character arrays then stay small enough
    for the CPU cache (measured 25–35 % faster than one pass over 40k texts)."""
    out = np.empty((len(texts), params.num_perm), dtype=np.uint32)
    for start in range(0, len(texts), _SLICE_TEXTS):
        hashes, offsets = shingle_hashes(texts[start : start + _SLICE_TEXTS], params.ngram)
        out[start : start + len(offsets) - 1] = minhash_signatures(
            hashes, offsets, params.num_perm, params.seed
        )
    return out


def empty_rows(sig: np.ndarray) -> np.ndarray:
    """Rows of texts without a single word (their signature is all-max)."""
    return (sig == _EMPTY).all(axis=1)


def _chunks(texts: Sequence[str], size: int) -> list[Sequence[str]]:
    return [texts[start : start + size] for start in range(0, len(texts), size)]


def _local_signatures(chunks: list[Sequence[str]], params: MinHashParams) -> Iterator[np.ndarray]:
    """Forked worker processes, one chunk each at a time, results in order (the
    `python -m curation` entry point cannot be re-imported by spawn)."""
    workers = min(os.cpu_count() or 1, len(chunks))
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(signatures_of_texts, chunks, [params] * len(chunks))


def _ray_signatures(chunks: list[Sequence[str]], params: MinHashParams) -> Iterator[np.ndarray]:
    """One Ray task per chunk on the connected cluster; results in order. Tasks are
    pure (texts in, signatures out): a retried task just computes the same again."""
    import ray  # heavy optional dependency: only a Ray run pays for importing it

    task = ray.remote(num_cpus=1, max_retries=3)(signatures_of_texts)
    params_ref = ray.put(params)
    pending = [task.remote(chunk, params_ref) for chunk in chunks]
    for ref in pending:
        yield ray.get(ref)


def compute_signatures(
    texts: Sequence[str],
    params: MinHashParams,
    executor: ExecutorChoice | None = None,
    *,
    chunk_texts: int = CHUNK_TEXTS,
    parallel_min: int = PARALLEL_MIN_TEXTS,
    on_chunk: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Signatures of `texts` (n, num_perm), chunk by chunk: in this process for a few
    texts, else in forked worker processes (`local`) or as Ray tasks (`ray`, this
    process being connected to the cluster). `on_chunk(start, signatures)` sees each
    chunk as it arrives, in order (the driver stores them)."""
    out = np.empty((len(texts), params.num_perm), dtype=np.uint32)
    chunks = _chunks(texts, chunk_texts)
    if executor is not None and executor.is_ray and chunks:
        results: Iterator[np.ndarray] = _ray_signatures(chunks, params)
    elif len(texts) >= parallel_min and len(chunks) > 1 and (os.cpu_count() or 1) > 1:
        results = _local_signatures(chunks, params)
    else:
        results = (signatures_of_texts(chunk, params) for chunk in chunks)
    start = 0
    for sig in results:
        out[start : start + len(sig)] = sig
        if on_chunk is not None:
            on_chunk(start, sig)
        start += len(sig)
    return out


# -- LSH ---------------------------------------------------------------------------------


def candidate_probability(jaccard: float, bands: int, rows: int) -> float:
    """Chance that a pair at this Jaccard shares at least one of `bands` bands of `rows`."""
    return 1.0 - (1.0 - jaccard**rows) ** bands


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows): the most rows per band (fewest chance candidates) such that a pair
    exactly at `threshold` is still a candidate with p ≥ `LSH_RECALL_AT_THRESHOLD`.

    Every candidate is verified with the exact Jaccard, so a false candidate costs only
    time while a missed one is a missed duplicate. 128 permutations at 0.8: 18 bands of
    7 rows (p = 0.985 at 0.8, 0.998 at 0.85; a pair at 0.3 has p = 0.004)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"the Jaccard threshold must be in (0, 1], got {threshold}")
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if candidate_probability(threshold, bands, rows) >= LSH_RECALL_AT_THRESHOLD:
            best = (bands, rows)
    return best


def _band_keys(sig: np.ndarray, bands: int, rows: int, block_rows: int = 16_384) -> np.ndarray:
    """(bands, n) uint64: one key per band of each signature, in one pass over `sig`
    by blocks of rows (reading a band's columns one band at a time would walk the whole
    matrix once per band)."""
    multipliers = np.random.default_rng(7).integers(1, 2**63 - 1, size=rows, dtype=np.uint64) | np.uint64(1)
    keys = np.empty((bands, len(sig)), dtype=np.uint64)
    for start in range(0, len(sig), block_rows):
        block = sig[start : start + block_rows, : bands * rows].astype(np.uint64).reshape(-1, bands, rows)
        with np.errstate(over="ignore"):
            block *= multipliers
            keys[:, start : start + len(block)] = _mix64(block.sum(axis=2, dtype=np.uint64)).T
    return keys


def _agreeing(sig: np.ndarray, pairs: np.ndarray, min_agreement: float) -> np.ndarray:
    """The pairs whose signatures agree on at least `min_agreement` of their entries
    (the MinHash estimate of their Jaccard), estimated `AGREEMENT_BLOCK` pairs at a time."""
    keep = np.zeros(len(pairs), dtype=bool)
    for start in range(0, len(pairs), AGREEMENT_BLOCK):
        block = pairs[start : start + AGREEMENT_BLOCK]
        keep[start : start + len(block)] = (sig[block[:, 0]] == sig[block[:, 1]]).mean(axis=1) >= min_agreement
    return pairs[keep]


def _bucket_pairs(order: np.ndarray, keys: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """(m, 2) pairs of documents sharing a key (one band): all pairs within a bucket of up
    to ALL_PAIRS_BUCKET members, the first and previous member within a bigger one."""
    sorted_keys = keys[order]
    boundaries = np.flatnonzero(np.diff(sorted_keys)) + 1
    starts = np.concatenate(([0], boundaries))
    sizes = np.diff(np.concatenate((starts, [len(order)])))
    chunks: list[np.ndarray] = [np.zeros((0, 2), dtype=np.int64)]
    pairs_of_two = starts[sizes == 2]
    if len(pairs_of_two):
        chunks.append(np.stack([docs[order[pairs_of_two]], docs[order[pairs_of_two + 1]]], axis=1))
    big = sizes > 2
    for s, size in zip(starts[big], sizes[big], strict=True):
        members = docs[order[s : s + size]]
        if len(members) <= ALL_PAIRS_BUCKET:
            i, j = np.triu_indices(len(members), k=1)
            chunks.append(np.stack([members[i], members[j]], axis=1))
        else:
            chunks.append(np.stack([np.full(len(members) - 1, members[0]), members[1:]], axis=1))
            chunks.append(np.stack([members[:-1], members[1:]], axis=1))
    pairs = np.concatenate(chunks).astype(np.int64)
    pairs.sort(axis=1)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def lsh_candidate_pairs(
    sig: np.ndarray,
    bands: int,
    rows: int,
    active: np.ndarray | None = None,
    *,
    min_agreement: float | None = None,
    cross_at: int | None = None,
) -> np.ndarray:
    """(m, 2) int64 pairs (i < j), sorted, that share at least one LSH band and, with
    `min_agreement`, whose signatures agree on at least that share of their entries; with
    `cross_at`, only pairs with i < cross_at ≤ j (matches of one set against another).

    The agreement filter runs on each band's pairs as they are made, so memory holds the
    pairs that pass it rather than every pair in every shared bucket (templated text fills
    buckets: at 1M samples those were hundreds of millions of pairs).
    A pure function of the signatures: the same signatures give the same pairs."""
    docs = np.arange(len(sig)) if active is None else np.flatnonzero(active)
    if len(docs) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    n = np.int64(len(sig))
    kept: list[np.ndarray] = []
    for keys in _band_keys(sig if active is None else sig[docs], bands, rows):
        pairs = _bucket_pairs(np.argsort(keys, kind="stable"), keys, docs)
        codes = np.unique(pairs[:, 0] * n + pairs[:, 1])  # one int64 per pair: a cheaper unique
        pairs = np.stack([codes // n, codes % n], axis=1)
        if cross_at is not None:
            pairs = pairs[(pairs[:, 0] < cross_at) & (pairs[:, 1] >= cross_at)]
        if min_agreement is not None and len(pairs):
            pairs = _agreeing(sig, pairs, min_agreement)
        kept.append(pairs[:, 0] * n + pairs[:, 1])
    codes = np.unique(np.concatenate(kept))
    return np.stack([codes // n, codes % n], axis=1)
