"""Every default threshold of the diversity checks, in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class DiversityThresholds:
    """Thresholds of the deduplication finders and of the diversity / collapse warnings.

    Deduplication (each finding becomes a Mark a reviewer can override):

    * ``near_dup_jaccard = 0.8`` — two samples are near-duplicates when the Jaccard
      similarity of their sets of word 5-grams (``shingle_words``) is at least this;
      candidates come from MinHash LSH with ``num_perm = 128`` permutations.
    * ``semantic_cosine = 0.95`` — semantic duplicates: embedding cosine at least this.
    * ``contamination_ngram = 13`` — a sample sharing any word 13-gram with an
      evaluation set is marked as contamination.

    Diversity warnings, each comparing a selection with the reference (real) set on
    equal-size samples:

    * ``vendi_ratio_min = 0.8`` — warn when Vendi(synthetic) / Vendi(reference) is below.
    * ``spread_ratio_min = 0.85`` — warn when the mean distance to the centroid,
      synthetic over reference, is below.
    * ``coverage_fraction_min = 0.7`` — warn when coverage (Naeem et al. 2020, k =
      ``prdc_k``) is below 0.7 × the reference-vs-reference baseline (two disjoint
      halves of the reference set).
    * ``duplicate_share_max = 0.10`` — warn when more than 10 % of the synthetic
      samples have another synthetic sample at cosine ≥ ``semantic_cosine``.
    * ``empty_cluster_share_max = 0.2`` — k-means clusters are fitted on the reference;
      warn when the share of reference samples lying in clusters that hold no
      synthetic sample exceeds 0.2 *and* the reference-vs-reference baseline
      (lost tails, not sampling noise).

    Collapse monitor (per lineage, across generations):

    * ``collapse_min_generations = 3`` — the slope test needs at least this many.
    * ``collapse_slope_tolerance = 0.03`` — warn when the least-squares slope of
      Vendi or coverage, relative to the first generation, is below −0.03 per generation.
    * ``collapse_max_drop = 0.10`` — warn on any generation-over-generation drop
      larger than 10 %.
    * ``real_share_drop = 0.10`` — warn when the share of real data in the few-shot
      sources / export plan falls by more than this (absolute) from the first
      generation to the latest (real data being replaced rather than accumulated).
    """

    near_dup_jaccard: float = 0.8
    shingle_words: int = 5
    num_perm: int = 128
    semantic_cosine: float = 0.95
    contamination_ngram: int = 13

    prdc_k: int = 5
    vendi_ratio_min: float = 0.8
    spread_ratio_min: float = 0.85
    coverage_fraction_min: float = 0.7
    duplicate_share_max: float = 0.10
    empty_cluster_share_max: float = 0.2

    collapse_min_generations: int = 3
    collapse_slope_tolerance: float = 0.03
    collapse_max_drop: float = 0.10
    real_share_drop: float = 0.10

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
