"""Duplicate finders on plain lists of texts / vectors (no store here).

Within one set the *first* occurrence is kept and every later duplicate points at
a kept sample (greedy in order: a sample is a duplicate when it matches an
earlier sample that was itself kept). Across sets (a batch against accepted
samples, the reference set or an evaluation set) each query gets its best match.

* exact — equal normalised text (NFKC, casefold, whitespace collapsed).
* near — Jaccard of word 5-gram sets ≥ 0.8. Candidates come from MinHash LSH
  (`minhash`: vectorised signatures, computed in worker processes or Ray tasks
  for big sets, or read from the store; bands chosen for recall); every candidate
  is then verified with the exact Jaccard, so the decision is the documented one.
* semantic — embedding cosine ≥ 0.95 through a faiss index (`knn`: exact for small
  sets, an HNSW graph above `knn.EXACT_MAX`).
* contamination — a shared word 13-gram with an evaluation set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curation.diversity.knn import EXACT_MAX, knn
from curation.diversity.minhash import (
    MinHashParams,
    compute_signatures,
    empty_rows,
    lsh_candidate_pairs,
    lsh_params,
    shingle_hashes,
)
from curation.diversity.text import ngram_hashes, normalise_text, tokenise
from curation.executors import ExecutorChoice


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


#: Candidates whose MinHash estimate of the Jaccard is below threshold − margin are not
#: checked exactly. Measured on 100k templated math and instruction texts (2,280 pairs at
#: exact Jaccard ≥ 0.8): exact − estimate had mean 0.037, standard deviation 0.037 and
#: maximum 0.163; a margin of 0.15 lost one pair, 0.2 none. 0.25 keeps a wide berth.
ESTIMATE_MARGIN = 0.25


@dataclass
class NearDupIndex:
    """Signatures and LSH bands of one corpus; candidates verified with the exact Jaccard.

    `signatures` (from the store, see `service.minhash_signatures_for`) are used as
    given; otherwise they are computed here (`executor`: local processes or Ray tasks)."""

    texts: Sequence[str]
    sig: np.ndarray
    params: MinHashParams
    bands: int
    rows: int

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        *,
        ngram: int = 5,
        num_perm: int = 128,
        threshold: float = 0.8,
        signatures: np.ndarray | None = None,
        executor: ExecutorChoice | None = None,
    ) -> NearDupIndex:
        params = MinHashParams(num_perm=num_perm, ngram=ngram)
        sig = compute_signatures(texts, params, executor) if signatures is None else signatures
        if sig.shape != (len(texts), num_perm):
            raise ValueError(
                f"signatures of shape {sig.shape} for {len(texts)} texts and {num_perm} permutations"
            )
        bands, rows = lsh_params(threshold, num_perm)
        return cls(texts, sig, params, bands, rows)

    def candidate_pairs(
        self,
        active: np.ndarray | None = None,
        *,
        min_agreement: float | None = None,
        cross_at: int | None = None,
    ) -> np.ndarray:
        """(m, 2) pairs sharing an LSH band (see `lsh_candidate_pairs` for the filters); a
        function of the signatures only."""
        has = ~empty_rows(self.sig)
        return lsh_candidate_pairs(
            self.sig,
            self.bands,
            self.rows,
            has if active is None else has & active,
            min_agreement=min_agreement,
            cross_at=cross_at,
        )

    def verified_pairs(
        self,
        threshold: float,
        active: np.ndarray | None = None,
        *,
        margin: float = ESTIMATE_MARGIN,
        cross_at: int | None = None,
    ) -> list[tuple[int, int, float]]:
        """Candidate pairs whose exact Jaccard is ≥ threshold; with `cross_at`, only pairs
        (i, j) with i < cross_at ≤ j. Candidates whose MinHash estimate is below
        `threshold - margin` are dropped first, block by block: templated text puts millions
        of pairs in shared buckets, and checking each exactly in Python took tens of GB at
        1M samples."""
        pairs = self.candidate_pairs(
            active, min_agreement=threshold - margin if margin < 1.0 else None, cross_at=cross_at
        )
        if not len(pairs):
            return []
        docs = np.unique(pairs)
        sets = ShingleSets(*shingle_hashes([self.texts[d] for d in docs], self.params.ngram))
        position = np.searchsorted(docs, pairs)
        out = []
        for (i, j), (pi, pj) in zip(pairs.tolist(), position.tolist(), strict=True):
            score = sets.jaccard(pi, pj)
            if score >= threshold:
                out.append((i, j, score))
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
    signatures: np.ndarray | None = None,
    executor: ExecutorChoice | None = None,
) -> list[Finding]:
    """Within-set near-duplicates (word `ngram` Jaccard ≥ threshold); `skip` masks samples
    already marked; `signatures` of `texts` if known (else computed on `executor`)."""
    index = NearDupIndex.build(
        texts, ngram=ngram, num_perm=num_perm, threshold=threshold, signatures=signatures, executor=executor
    )
    active = None if skip is None else ~skip
    return _greedy_keep_first(len(texts), index.verified_pairs(threshold, active), "near", skip)


def near_matches(
    queries: Sequence[str],
    targets: Sequence[str],
    *,
    threshold: float = 0.8,
    ngram: int = 5,
    num_perm: int = 128,
    signatures: tuple[np.ndarray, np.ndarray] | None = None,
    executor: ExecutorChoice | None = None,
) -> list[Finding]:
    """For each query, its most similar target with Jaccard ≥ threshold (if any);
    `signatures` = (of the queries, of the targets) if known."""
    if not queries or not targets:
        return []
    index = NearDupIndex.build(
        list(queries) + list(targets),
        ngram=ngram,
        num_perm=num_perm,
        threshold=threshold,
        signatures=None if signatures is None else np.concatenate(signatures),
        executor=executor,
    )
    nq = len(queries)
    best: dict[int, tuple[float, int]] = {}
    for i, j, score in index.verified_pairs(threshold, cross_at=nq):
        current = best.get(i)
        if current is None or score > current[0]:
            best[i] = (score, j - nq)
    return [Finding(i, j, "near", s) for i, (s, j) in sorted(best.items())]


# -- semantic --------------------------------------------------------------------


def semantic_duplicates(
    vectors: np.ndarray,
    *,
    threshold: float = 0.95,
    k: int = 10,
    skip: np.ndarray | None = None,
    exact_max: int = EXACT_MAX,
) -> list[Finding]:
    """Within-set pairs at cosine ≥ threshold (each row's k nearest checked: exactly up to
    `exact_max` rows, else through the HNSW graph of `knn`). `vectors` may be memory-mapped."""
    n = len(vectors)
    if n < 2:
        return []
    sims, idx = knn(vectors, k=min(k, n - 1), exact_max=exact_max)
    rows, cols = np.nonzero((sims >= threshold) & (idx >= 0))
    pairs = {}
    for r, c in zip(rows, cols, strict=True):
        a, b = int(r), int(idx[r, c])
        i, j = min(a, b), max(a, b)
        pairs[(i, j)] = max(pairs.get((i, j), -1.0), float(sims[r, c]))
    return _greedy_keep_first(n, [(i, j, s) for (i, j), s in pairs.items()], "semantic", skip)


def semantic_matches(
    queries: np.ndarray, targets: np.ndarray, *, threshold: float = 0.95, exact_max: int = EXACT_MAX
) -> list[Finding]:
    """Each query's most similar target at cosine ≥ threshold (exact up to `exact_max`
    targets, else through the HNSW graph of `knn`)."""
    if not len(queries) or not len(targets):
        return []
    sims, idx = knn(targets, queries, k=1, exact_max=exact_max)
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
