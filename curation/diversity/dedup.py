"""Duplicate finders on plain lists of texts / vectors (no store here).

Within one set the *first* occurrence is kept and every later duplicate points at
a kept sample (greedy in order: a sample is a duplicate when it matches an
earlier sample that was itself kept). Across sets (a batch against accepted
samples, the reference set or an evaluation set) each query gets its best match.

* exact — equal normalised text (NFKC, casefold, whitespace collapsed).
* near — Jaccard of word 5-gram sets ≥ 0.8. Candidates come from MinHash LSH
  (signatures computed with numpy in one pass over all shingles, banding
  parameters from datasketch's MinHashLSH, tuned for recall); every candidate is
  then verified with the exact Jaccard, so the decision is the documented one.
* semantic — embedding cosine ≥ 0.95 through a faiss index (`knn`).
* contamination — a shared word 13-gram with an evaluation set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curation.diversity.knn import knn
from curation.diversity.text import TokenisedCorpus, ngram_hashes, normalise_text, tokenise

#: Within an LSH bucket, all pairs are checked up to this size; bigger buckets
#: (templated data) are checked against their first and previous member only.
ALL_PAIRS_BUCKET = 32
_SHINGLE_CHUNK = 1 << 16
_MASK32 = np.uint64(0xFFFFFFFF)


@dataclass(frozen=True)
class Finding:
    """`index` (a position in the query list) duplicates `other` (a position in the
    target list; the same list for within-set findings)."""

    index: int
    other: int
    method: str
    score: float
    detail: str = ""


# -- exact -----------------------------------------------------------------------


def exact_duplicates(texts: Sequence[str]) -> list[Finding]:
    """Later copies of an earlier text (after normalisation)."""
    first: dict[str, int] = {}
    out: list[Finding] = []
    for i, text in enumerate(texts):
        key = normalise_text(text)
        j = first.setdefault(key, i)
        if j != i:
            out.append(Finding(i, j, "exact", 1.0))
    return out


def exact_matches(queries: Sequence[str], targets: Sequence[str]) -> list[Finding]:
    first: dict[str, int] = {}
    for j, text in enumerate(targets):
        first.setdefault(normalise_text(text), j)
    out = []
    for i, text in enumerate(queries):
        j = first.get(normalise_text(text))
        if j is not None:
            out.append(Finding(i, j, "exact", 1.0))
    return out


# -- MinHash LSH -----------------------------------------------------------------


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63 - 1, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63 - 1, size=num_perm, dtype=np.uint64)
    return a, b


def minhash_signatures(
    hashes: np.ndarray, offsets: np.ndarray, num_perm: int = 128, seed: int = 1
) -> np.ndarray:
    """(n_docs, num_perm) uint32 MinHash signatures from flat shingle hashes.

    Permutation k maps a 32-bit shingle value x to ((a_k·x + b_k) mod 2⁶⁴) >> 32
    (multiply-add-shift hashing). Documents without shingles keep the all-max row."""
    n_docs = len(offsets) - 1
    sig = np.full((n_docs, num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    if not len(hashes):
        return sig
    a, b = _permutations(num_perm, seed)
    values = (hashes >> np.uint64(32)) ^ (hashes & _MASK32)
    counts = np.diff(offsets)
    start_doc = 0
    while start_doc < n_docs:
        end_doc = int(np.searchsorted(offsets, offsets[start_doc] + _SHINGLE_CHUNK, side="right")) - 1
        end_doc = min(max(end_doc, start_doc + 1), n_docs)
        lo, hi = offsets[start_doc], offsets[end_doc]
        if hi > lo:
            with np.errstate(over="ignore"):
                block = ((values[lo:hi, None] * a[None, :] + b[None, :]) >> np.uint64(32)).astype(np.uint32)
            docs = np.arange(start_doc, end_doc)
            docs = docs[counts[docs] > 0]
            sig[docs] = np.minimum.reduceat(block, offsets[docs] - lo, axis=0)
        start_doc = end_doc
    return sig


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) for `threshold`, as datasketch's MinHashLSH chooses them with false
    negatives weighted 0.9: every candidate is verified with the exact Jaccard, so a
    false positive costs only time while a false negative is a missed duplicate
    (128 permutations: 14 bands of 9 rows; a pair at Jaccard 0.8 is found with p ≈ 0.87,
    at 0.85 with p ≈ 0.97)."""
    from datasketch import MinHashLSH  # heavy (~1 s): loaded only when choosing LSH bands

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
    return int(lsh.b), int(lsh.r)


def lsh_candidate_pairs(
    sig: np.ndarray, bands: int, rows: int, active: np.ndarray | None = None
) -> np.ndarray:
    """(m, 2) int64 pairs (i < j) that share at least one LSH band."""
    n = len(sig)
    docs = np.arange(n) if active is None else np.flatnonzero(active)
    if len(docs) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    mult = np.random.default_rng(7).integers(1, 2**63 - 1, size=rows, dtype=np.uint64) | np.uint64(1)
    chunks: list[np.ndarray] = []
    for band in range(bands):
        block = sig[docs, band * rows : (band + 1) * rows].astype(np.uint64)
        with np.errstate(over="ignore"):
            keys = (block * mult).sum(axis=1, dtype=np.uint64)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        boundaries = np.flatnonzero(np.diff(sorted_keys)) + 1
        starts = np.concatenate(([0], boundaries))
        ends = np.concatenate((boundaries, [len(order)]))
        big = np.flatnonzero(ends - starts >= 2)
        for s, e in zip(starts[big], ends[big], strict=True):
            members = docs[order[s:e]]
            if len(members) <= ALL_PAIRS_BUCKET:
                i, j = np.triu_indices(len(members), k=1)
                chunks.append(np.stack([members[i], members[j]], axis=1))
            else:
                chunks.append(np.stack([np.full(len(members) - 1, members[0]), members[1:]], axis=1))
                chunks.append(np.stack([members[:-1], members[1:]], axis=1))
    if not chunks:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(chunks).astype(np.int64)
    pairs.sort(axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0)


class ShingleSets:
    """Exact Jaccard between documents from their flat shingle hashes (sets built lazily)."""

    def __init__(self, hashes: np.ndarray, offsets: np.ndarray) -> None:
        self.hashes = hashes
        self.offsets = offsets
        self._sets: dict[int, np.ndarray] = {}

    def get(self, d: int) -> np.ndarray:
        s = self._sets.get(d)
        if s is None:
            s = self._sets[d] = np.unique(self.hashes[self.offsets[d] : self.offsets[d + 1]])
        return s

    def jaccard(self, i: int, j: int) -> float:
        a, b = self.get(i), self.get(j)
        if not len(a) or not len(b):
            return 0.0
        inter = len(np.intersect1d(a, b, assume_unique=True))
        return inter / (len(a) + len(b) - inter)


@dataclass
class NearDupIndex:
    """Shingles, signatures and verified-pair machinery for one corpus."""

    corpus: TokenisedCorpus
    sets: ShingleSets
    sig: np.ndarray
    bands: int
    rows: int

    @classmethod
    def build(
        cls, texts: Sequence[str], *, ngram: int = 5, num_perm: int = 128, threshold: float = 0.8
    ) -> NearDupIndex:
        corpus = tokenise(texts)
        hashes, offsets = ngram_hashes(corpus, ngram, short_docs="whole")
        sig = minhash_signatures(hashes, offsets, num_perm)
        bands, rows = lsh_params(threshold, num_perm)
        return cls(corpus, ShingleSets(hashes, offsets), sig, bands, rows)

    def verified_pairs(
        self, threshold: float, active: np.ndarray | None = None
    ) -> list[tuple[int, int, float]]:
        has = np.diff(self.sets.offsets) > 0
        active = has if active is None else (active & has)
        pairs = lsh_candidate_pairs(self.sig, self.bands, self.rows, active)
        out = []
        for i, j in pairs:
            score = self.sets.jaccard(int(i), int(j))
            if score >= threshold:
                out.append((int(i), int(j), score))
        return out


def _greedy_keep_first(
    n: int, pairs: list[tuple[int, int, float]], method: str, skip: np.ndarray | None
) -> list[Finding]:
    """Mark j as a duplicate of its best-scoring earlier *kept* partner i (pairs have i < j)."""
    by_later: dict[int, list[tuple[int, float]]] = {}
    for i, j, score in pairs:
        if skip is not None and (skip[i] or skip[j]):
            continue
        by_later.setdefault(j, []).append((i, score))
    kept = np.ones(n, dtype=bool)
    out = []
    for j in sorted(by_later):
        candidates = [(score, -i) for i, score in by_later[j] if kept[i]]
        if candidates:
            score, neg_i = max(candidates)
            kept[j] = False
            out.append(Finding(j, -neg_i, method, float(score)))
    return out


def near_duplicates(
    texts: Sequence[str],
    *,
    threshold: float = 0.8,
    ngram: int = 5,
    num_perm: int = 128,
    skip: np.ndarray | None = None,
) -> list[Finding]:
    """Within-set near-duplicates (word `ngram` Jaccard ≥ threshold); `skip` masks samples already marked."""
    index = NearDupIndex.build(texts, ngram=ngram, num_perm=num_perm, threshold=threshold)
    active = None if skip is None else ~skip
    return _greedy_keep_first(len(texts), index.verified_pairs(threshold, active), "near", skip)


def near_matches(
    queries: Sequence[str],
    targets: Sequence[str],
    *,
    threshold: float = 0.8,
    ngram: int = 5,
    num_perm: int = 128,
) -> list[Finding]:
    """For each query, its most similar target with Jaccard ≥ threshold (if any)."""
    if not queries or not targets:
        return []
    index = NearDupIndex.build(
        list(queries) + list(targets), ngram=ngram, num_perm=num_perm, threshold=threshold
    )
    nq = len(queries)
    best: dict[int, tuple[float, int]] = {}
    for i, j, score in index.verified_pairs(threshold):
        if i < nq <= j:
            current = best.get(i)
            if current is None or score > current[0]:
                best[i] = (score, j - nq)
    return [Finding(i, j, "near", s) for i, (s, j) in sorted(best.items())]


# -- semantic --------------------------------------------------------------------


def semantic_duplicates(
    vectors: np.ndarray, *, threshold: float = 0.95, k: int = 10, skip: np.ndarray | None = None
) -> list[Finding]:
    """Within-set pairs at cosine ≥ threshold (each row's k nearest checked)."""
    n = len(vectors)
    if n < 2:
        return []
    sims, idx = knn(vectors, k=min(k, n - 1))
    rows, cols = np.nonzero((sims >= threshold) & (idx >= 0))
    pairs = {}
    for r, c in zip(rows, cols, strict=True):
        a, b = int(r), int(idx[r, c])
        i, j = min(a, b), max(a, b)
        pairs[(i, j)] = max(pairs.get((i, j), -1.0), float(sims[r, c]))
    return _greedy_keep_first(n, [(i, j, s) for (i, j), s in pairs.items()], "semantic", skip)


def semantic_matches(queries: np.ndarray, targets: np.ndarray, *, threshold: float = 0.95) -> list[Finding]:
    if not len(queries) or not len(targets):
        return []
    sims, idx = knn(targets, queries, k=1)
    hits = np.flatnonzero((sims[:, 0] >= threshold) & (idx[:, 0] >= 0))
    return [Finding(int(i), int(idx[i, 0]), "semantic", float(sims[i, 0])) for i in hits]


# -- contamination ---------------------------------------------------------------


def contamination(queries: Sequence[str], eval_texts: Sequence[str], *, n: int = 13) -> list[Finding]:
    """Queries sharing a word n-gram with any evaluation text.

    score = the share of the query's n-grams found in the evaluation set; detail =
    the first shared n-gram (as words); other = the evaluation text it came from."""
    if not queries or not eval_texts:
        return []
    eval_corpus = tokenise(eval_texts)
    eval_hashes, eval_offsets = ngram_hashes(eval_corpus, n, short_docs="skip")
    if not len(eval_hashes):
        return []
    eval_doc = np.repeat(np.arange(len(eval_texts)), np.diff(eval_offsets))
    order = np.argsort(eval_hashes, kind="stable")
    sorted_hashes, sorted_docs = eval_hashes[order], eval_doc[order]

    corpus = tokenise(queries)
    hashes, offsets = ngram_hashes(corpus, n, short_docs="skip")
    if not len(hashes):
        return []
    pos = np.searchsorted(sorted_hashes, hashes)
    pos_clipped = np.minimum(pos, len(sorted_hashes) - 1)
    hit = sorted_hashes[pos_clipped] == hashes
    counts = np.diff(offsets)
    doc_of = np.repeat(np.arange(len(queries)), counts)
    hits_per_doc = np.bincount(doc_of[hit], minlength=len(queries))
    inverse = [""] * len(corpus.vocab)
    for word, i in corpus.vocab.items():
        inverse[i] = word
    out = []
    for d in np.flatnonzero(hits_per_doc):
        lo = offsets[d]
        first = int(np.flatnonzero(hit[lo : offsets[d + 1]])[0])
        start = corpus.offsets[d] + first
        gram = " ".join(inverse[t] for t in corpus.ids[start : start + n])
        other = int(sorted_docs[pos_clipped[lo + first]])
        out.append(Finding(int(d), other, "contamination", float(hits_per_doc[d] / counts[d]), gram))
    return out
