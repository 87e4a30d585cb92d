"""Diversity metrics of a selection of samples against the reference (real) set.

Every comparison is on equal-size samples: the larger side is subsampled (seeded)
to the size of the smaller one, and both to at most ``max_samples``; metrics such
as distinct-n, nearest-neighbour cosine and PRDC depend on the sample size, so
comparing unequal sizes would flag nothing real. Vectors are L2-normalised
sentence embeddings; distances are Euclidean on the unit sphere (monotone in
cosine, so k-NN balls can be tested by cosine).

* Vendi score — exp(entropy of the eigenvalues of K/n) for the cosine kernel K;
  computed in linear time from the d×d matrix XᵀX/n, which has the same non-zero
  eigenvalues as the n×n kernel matrix XXᵀ/n. k orthogonal equal clusters give k.
* distinct-1/2 — distinct word uni/bigrams over all word uni/bigrams of the texts.
* mean nearest-neighbour cosine, spread (mean distance to the centroid).
* precision / recall / density / coverage — Naeem et al. 2020, k = 5. For each
  point only its ``PRDC_CANDIDATES`` nearest points of the other set are tested for
  ball membership (exact for precision, recall and coverage whenever a containing
  ball is among those neighbours, which it almost always is; density can be
  slightly under-counted).
* cluster occupancy — k-means fitted on the reference; each cluster's share of
  reference and synthetic samples; clusters with reference mass but no synthetic
  sample are lost tails.
* lengths — prompt / response length in words.

`DiversityThresholds` holds the warning thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curation.data import record_dict
from curation.diversity.knn import EXACT_MAX, build_index, drop_self, search, train_quantizer
from curation.diversity.text import ngram_hashes, tokenise
from curation.diversity.thresholds import DiversityThresholds

PRDC_CANDIDATES = 20
MAX_SAMPLES = 50_000
#: Lists probed by the approximate k-NN of the metrics (beyond EXACT_MAX samples):
#: k-NN radii tolerate a rare missed neighbour, and this halves the search time.
METRICS_NPROBE = 8


# -- single metrics ------------------------------------------------------------------


def vendi_score(x: np.ndarray) -> float:
    """Vendi score with the cosine kernel, from the d×d covariance (O(n·d²))."""
    x = np.asarray(x, dtype=np.float32)
    if not len(x):
        return 0.0
    gram = np.zeros((x.shape[1], x.shape[1]), dtype=np.float64)
    for start in range(0, len(x), 8192):
        block = x[start : start + 8192].astype(np.float64)
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        gram += block.T @ block
    eig = np.linalg.eigvalsh(gram / len(x))
    eig = eig[eig > 1e-12]
    eig = eig / eig.sum()
    return float(np.exp(-(eig * np.log(eig)).sum()))


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct word n-grams / all word n-grams over `texts` (0 when there are none)."""
    corpus = tokenise(texts)
    hashes, _ = ngram_hashes(corpus, n, short_docs="skip")
    return float(len(np.unique(hashes)) / len(hashes)) if len(hashes) else 0.0


def spread(x: np.ndarray) -> float:
    """Mean Euclidean distance of the rows to their centroid."""
    if not len(x):
        return 0.0
    return float(np.linalg.norm(x - x.mean(axis=0), axis=1).mean())


@dataclass
class _Neighbours:
    """Self k-NN of one set and an index to search it."""

    index: Any
    sims: np.ndarray
    idx: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, k: int, quantizer: Any = None) -> _Neighbours:
        index = build_index(x, quantizer=quantizer, nprobe=METRICS_NPROBE)
        sims, idx = search(index, x, k + 1)
        sims, idx = drop_self(sims, idx, k)
        return cls(index, sims, idx)

    @property
    def nearest(self) -> np.ndarray:
        """Cosine to the nearest other row."""
        return self.sims[:, 0]

    def radius(self, k: int) -> np.ndarray:
        """Cosine to the k-th nearest other row (the k-NN ball boundary)."""
        return self.sims[:, k - 1]


def prdc_from(
    real: _Neighbours, fake: _Neighbours, real_x: np.ndarray, fake_x: np.ndarray, k: int
) -> dict[str, float]:
    real_r = real.radius(k)
    fake_r = fake.radius(k)
    c = min(PRDC_CANDIDATES, len(real_x))
    sims_fr, idx_fr = search(real.index, fake_x, c)
    inside_real = (idx_fr >= 0) & (sims_fr >= real_r[np.maximum(idx_fr, 0)])
    c = min(PRDC_CANDIDATES, len(fake_x))
    sims_rf, idx_rf = search(fake.index, real_x, c)
    inside_fake = (idx_rf >= 0) & (sims_rf >= fake_r[np.maximum(idx_rf, 0)])
    return {
        "precision": float(inside_real.any(axis=1).mean()),
        "recall": float(inside_fake.any(axis=1).mean()),
        "density": float(inside_real.sum(axis=1).mean() / k),
        "coverage": float((sims_rf[:, 0] >= real_r).mean()),
    }


def prdc(real_x: np.ndarray, fake_x: np.ndarray, k: int = 5, quantizer: Any = None) -> dict[str, float]:
    """Precision, recall, density and coverage of `fake_x` against `real_x` (Naeem et al. 2020)."""
    if min(len(real_x), len(fake_x)) <= k:
        return {"precision": math.nan, "recall": math.nan, "density": math.nan, "coverage": math.nan}
    return prdc_from(
        _Neighbours.of(real_x, k, quantizer), _Neighbours.of(fake_x, k, quantizer), real_x, fake_x, k
    )


def fit_clusters(ref: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """k-means centroids (unit norm) fitted on the reference vectors."""
    import faiss  # heavy: loaded only when clustering

    ref = np.ascontiguousarray(ref, dtype=np.float32)
    n_clusters = max(1, min(n_clusters, len(ref)))
    km = faiss.Kmeans(
        ref.shape[1], n_clusters, niter=20, seed=seed, spherical=True, min_points_per_centroid=1
    )
    km.train(ref)
    return km.centroids


def assign_clusters(centroids: np.ndarray, x: np.ndarray) -> np.ndarray:
    if not len(x):
        return np.zeros(0, dtype=np.int64)
    scores = np.asarray(x, dtype=np.float32) @ centroids.T
    return scores.argmax(axis=1)


def default_clusters(n: int) -> int:
    return int(min(50, max(2, round(math.sqrt(n / 2)))))


def empty_share(ref_labels: np.ndarray, other_labels: np.ndarray, n_clusters: int) -> float:
    """Share of reference samples in clusters where `other` has no sample."""
    ref_counts = np.bincount(ref_labels, minlength=n_clusters)
    other_counts = np.bincount(other_labels, minlength=n_clusters)
    return float(ref_counts[other_counts == 0].sum() / max(ref_counts.sum(), 1))


def length_stats(lengths: np.ndarray) -> dict[str, float]:
    if not len(lengths):
        return {"mean": 0.0, "p10": 0.0, "median": 0.0, "p90": 0.0}
    p10, med, p90 = np.percentile(lengths, [10, 50, 90])
    return {"mean": float(np.mean(lengths)), "p10": float(p10), "median": float(med), "p90": float(p90)}


# -- the report ------------------------------------------------------------------------


@dataclass
class DiversityWarning:
    code: str
    message: str
    value: float
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return record_dict(self)


@dataclass
class DiversityReport:
    """Metrics of a selection vs the reference; JSON-ready through `to_dict`."""

    n_synthetic: int
    n_reference: int
    n_compared: int
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    baseline: dict[str, float | None] = field(default_factory=dict)
    clusters: dict[str, Any] = field(default_factory=dict)
    lengths: dict[str, Any] = field(default_factory=dict)
    warnings: list[DiversityWarning] = field(default_factory=list)
    thresholds: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    #: Per-sample values for plots (not serialised): "syn_nn" / "ref_nn" (cosine to the
    #: nearest other sample of the same side), "syn_centroid" / "ref_centroid"
    #: (distance to the reference centroid), "syn_index" / "ref_index" (rows compared).
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def sampled(self) -> bool:
        return self.n_compared < max(self.n_synthetic, self.n_reference)

    def value(self, name: str, side: str = "synthetic") -> float | None:
        return self.metrics.get(name, {}).get(side)

    def to_dict(self) -> dict[str, Any]:
        return record_dict(self, derived=("sampled",), exclude=("arrays",))


def _clean(v: float | None) -> float | None:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return float(v)


def _entry(syn: float | None, ref: float | None, ratio: bool = True) -> dict[str, float | None]:
    syn, ref = _clean(syn), _clean(ref)
    r = syn / ref if ratio and syn is not None and ref not in (None, 0.0) else None
    return {"synthetic": syn, "reference": ref, "ratio": _clean(r)}


def subsample(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """m of n row indices, sorted, drawn without replacement (all n when m >= n)."""
    return np.arange(n) if m >= n else np.sort(rng.choice(n, m, replace=False))


def compare(
    syn_x: np.ndarray,
    ref_x: np.ndarray,
    syn_texts: Sequence[str] = (),
    ref_texts: Sequence[str] = (),
    *,
    syn_lengths: dict[str, np.ndarray] | None = None,
    ref_lengths: dict[str, np.ndarray] | None = None,
    thresholds: DiversityThresholds | None = None,
    seed: int = 0,
    max_samples: int = MAX_SAMPLES,
    n_clusters: int | None = None,
) -> DiversityReport:
    """All metrics of the synthetic selection against the reference, with warnings.

    syn_texts / ref_texts (aligned with the vectors) feed distinct-n; *_lengths map
    a field name ("prompt", "response") to per-sample word counts, aligned too."""
    t = thresholds or DiversityThresholds()
    k = t.prdc_k
    rng = np.random.default_rng(seed)
    syn_x = np.asarray(syn_x, dtype=np.float32)
    ref_x = np.asarray(ref_x, dtype=np.float32)
    m = min(len(syn_x), len(ref_x), max_samples)
    report = DiversityReport(len(syn_x), len(ref_x), m, thresholds=t.to_dict(), seed=seed)
    if m == 0:
        return report
    si = subsample(len(syn_x), m, rng)
    ri = subsample(len(ref_x), m, rng)
    s, r = syn_x[si], ref_x[ri]

    centre = r.mean(axis=0)
    report.arrays.update(
        syn_index=si,
        ref_index=ri,
        syn_centroid=np.linalg.norm(s - centre, axis=1),
        ref_centroid=np.linalg.norm(r - centre, axis=1),
    )
    report.metrics["vendi"] = _entry(vendi_score(s), vendi_score(r))
    report.metrics["spread"] = _entry(spread(s), spread(r))
    if len(syn_texts) and len(ref_texts):
        st = [syn_texts[i] for i in si]
        rt = [ref_texts[i] for i in ri]
        report.metrics["distinct_1"] = _entry(distinct_n(st, 1), distinct_n(rt, 1))
        report.metrics["distinct_2"] = _entry(distinct_n(st, 2), distinct_n(rt, 2))

    quantizer = None
    if m > EXACT_MAX:
        # One coarse quantizer, trained on the reference sample, for every index below.
        quantizer = train_quantizer(r, seed=seed)
    if m > k + 1:
        syn_nn = _Neighbours.of(s, k, quantizer)
        ref_nn = _Neighbours.of(r, k, quantizer)
        report.arrays.update(syn_nn=syn_nn.nearest, ref_nn=ref_nn.nearest)
        report.metrics["nn_cosine"] = _entry(float(syn_nn.nearest.mean()), float(ref_nn.nearest.mean()))
        report.metrics["duplicate_share"] = _entry(
            float((syn_nn.nearest >= t.semantic_cosine).mean()),
            float((ref_nn.nearest >= t.semantic_cosine).mean()),
            ratio=False,
        )
        scores = prdc_from(ref_nn, syn_nn, r, s, k)
        for name in ("precision", "recall", "density", "coverage"):
            report.metrics[name] = _entry(scores[name], None, ratio=False)

    # Reference-vs-reference baseline: two disjoint halves of the whole reference set.
    half = min(m, len(ref_x) // 2)
    if half > k + 1:
        perm = rng.permutation(len(ref_x))
        a, b = ref_x[np.sort(perm[:half])], ref_x[np.sort(perm[half : 2 * half])]
        base = prdc(a, b, k, quantizer if half > EXACT_MAX else None)
        report.baseline = {f"{name}": _clean(v) for name, v in base.items()}
        report.baseline["n"] = half
        for name in ("precision", "recall", "density", "coverage"):
            report.metrics[name]["reference"] = report.baseline[name]
            ref_v = report.baseline[name]
            syn_v = report.metrics[name]["synthetic"]
            report.metrics[name]["ratio"] = _clean(syn_v / ref_v) if syn_v is not None and ref_v else None
    else:
        a = b = None

    n_clusters = n_clusters or default_clusters(m)
    if m >= 2:
        centroids = fit_clusters(r, n_clusters, seed)
        n_clusters = len(centroids)
        ref_labels = assign_clusters(centroids, r)
        syn_labels = assign_clusters(centroids, s)
        ref_counts = np.bincount(ref_labels, minlength=n_clusters)
        syn_counts = np.bincount(syn_labels, minlength=n_clusters)
        empty = empty_share(ref_labels, syn_labels, n_clusters)
        baseline_empty = None
        if a is not None:
            baseline_empty = empty_share(
                assign_clusters(centroids, a), assign_clusters(centroids, b), n_clusters
            )
        report.clusters = {
            "k": n_clusters,
            "reference_share": (ref_counts / ref_counts.sum()).round(4).tolist(),
            "synthetic_share": (syn_counts / syn_counts.sum()).round(4).tolist(),
            "empty_clusters": int(((syn_counts == 0) & (ref_counts > 0)).sum()),
            "empty_share": empty,
            "baseline_empty_share": baseline_empty,
        }

    for name in sorted(set(syn_lengths or {}) & set(ref_lengths or {})):
        sl = np.asarray(syn_lengths[name])[si]
        rl = np.asarray(ref_lengths[name])[ri]
        ss, rs = length_stats(sl), length_stats(rl)
        report.lengths[name] = {"synthetic": ss, "reference": rs}
        report.metrics[f"{name}_length"] = _entry(ss["mean"], rs["mean"])

    report.warnings = warnings_for(report, t)
    return report


def warnings_for(report: DiversityReport, t: DiversityThresholds) -> list[DiversityWarning]:
    out: list[DiversityWarning] = []
    ratio_rules = (
        ("vendi", "Vendi score", t.vendi_ratio_min, "the selection has fewer distinct modes than real data."),
        (
            "spread",
            "Spread (mean distance to the centroid)",
            t.spread_ratio_min,
            "samples huddle around the centre.",
        ),
    )
    for metric, label, least, meaning in ratio_rules:
        ratio = report.metrics.get(metric, {}).get("ratio")
        if ratio is not None and ratio < least:
            text = f"{label} is {ratio:.0%} of the reference's (warn below {least:.0%}): {meaning}"
            out.append(DiversityWarning(metric, text, ratio, least))
    cov = report.metrics.get("coverage", {})
    if cov.get("synthetic") is not None and cov.get("reference"):
        bar = t.coverage_fraction_min * cov["reference"]
        if cov["synthetic"] < bar:
            out.append(
                DiversityWarning(
                    "coverage",
                    f"Coverage {cov['synthetic']:.2f} is below {t.coverage_fraction_min:.0%} of the "
                    f"reference-vs-reference baseline {cov['reference']:.2f}: regions of real data have no synthetic sample nearby.",
                    cov["synthetic"],
                    bar,
                )
            )
    dup = report.metrics.get("duplicate_share", {}).get("synthetic")
    if dup is not None and dup > t.duplicate_share_max:
        out.append(
            DiversityWarning(
                "duplicates",
                f"{dup:.0%} of samples have a neighbour at cosine ≥ {t.semantic_cosine} "
                f"(warn above {t.duplicate_share_max:.0%}).",
                dup,
                t.duplicate_share_max,
            )
        )
    clusters = report.clusters
    if clusters.get("empty_share") is not None:
        excess = clusters["empty_share"] - (clusters.get("baseline_empty_share") or 0.0)
        if excess > t.empty_cluster_share_max:
            out.append(
                DiversityWarning(
                    "empty_clusters",
                    f"{clusters['empty_clusters']} of {clusters['k']} reference clusters "
                    f"({clusters['empty_share']:.0%} of real samples) hold no synthetic sample, "
                    f"{excess:.0%} above the reference-vs-reference baseline (warn above {t.empty_cluster_share_max:.0%}): lost tails.",
                    excess,
                    t.empty_cluster_share_max,
                )
            )
    return out
