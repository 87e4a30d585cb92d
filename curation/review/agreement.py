"""Inter-reviewer agreement: Cohen's kappa for two reviewers, Fleiss' kappa for k.

Kappa corrects raw agreement for the agreement expected by chance from each
reviewer's label frequencies: 1 is perfect agreement, 0 is chance level. It is
undefined (None here) when chance agreement is already 1, e.g. everyone accepted
everything.

Pure functions first; `reviewer_agreement` reads each reviewer's live decisions
from the store (`curation.review.decisions.live_labels`).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from curation.review.decisions import live_labels

#: Labels that take part in agreement (a skip is no opinion).
AGREEMENT_LABELS = ("accept", "reject")


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items (in the same order)."""
    if len(first) != len(second):
        raise ValueError(f"both raters must label the same items ({len(first)} vs {len(second)})")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    count_a, count_b = Counter(first), Counter(second)
    expected = sum(count_a[label] * count_b[label] for label in count_a) / (n * n)
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa from a table of counts: one row per item, one column per label,
    each cell the number of raters who gave that label. Every item must have the
    same number of raters (at least 2)."""
    if not table:
        return None
    raters = {sum(row) for row in table}
    if len(raters) != 1:
        raise ValueError(f"every item needs the same number of raters, got {sorted(raters)}")
    m = raters.pop()
    if m < 2:
        raise ValueError("Fleiss' kappa needs at least 2 raters per item")
    n_items = len(table)
    categories = len(table[0])
    p_j = [sum(row[j] for row in table) / (n_items * m) for j in range(categories)]
    p_i = [(sum(c * c for c in row) - m) / (m * (m - 1)) for row in table]
    p_bar = sum(p_i) / n_items
    p_e = sum(p * p for p in p_j)
    if p_e >= 1:
        return None
    return (p_bar - p_e) / (1 - p_e)


@dataclass(frozen=True)
class PairAgreement:
    first: str
    second: str
    items: int
    observed: float
    kappa: float | None


@dataclass(frozen=True)
class Agreement:
    """Agreement over the samples at least two reviewers decided (accept / reject)."""

    #: Samples with two or more reviewers' labels.
    items: int
    reviewers: list[str]
    pairs: list[PairAgreement] = field(default_factory=list)
    #: Fleiss' kappa over the items with the most common number of raters (>= 2).
    fleiss: float | None = None
    fleiss_raters: int = 0
    fleiss_items: int = 0

    @property
    def kappa(self) -> float | None:
        """Cohen's kappa when exactly two reviewers overlap, else Fleiss' kappa."""
        if len(self.pairs) == 1:
            return self.pairs[0].kappa
        return self.fleiss

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "reviewers": self.reviewers,
            "kappa": self.kappa,
            "pairs": [pair.__dict__ for pair in self.pairs],
            "fleiss": self.fleiss,
            "fleiss_raters": self.fleiss_raters,
            "fleiss_items": self.fleiss_items,
        }


def agreement_from_labels(labels: Mapping[int, Mapping[str, str]]) -> Agreement:
    """Agreement from {sample id: {reviewer: label}} (labels outside
    AGREEMENT_LABELS are ignored)."""
    shared = {
        sample: {who: label for who, label in by.items() if label in AGREEMENT_LABELS}
        for sample, by in labels.items()
    }
    shared = {sample: by for sample, by in shared.items() if len(by) >= 2}
    reviewers = sorted({who for by in shared.values() for who in by})
    pairs = []
    for first, second in itertools.combinations(reviewers, 2):
        both = [(by[first], by[second]) for by in shared.values() if first in by and second in by]
        if not both:
            continue
        a, b = zip(*both, strict=True)
        observed = sum(x == y for x, y in both) / len(both)
        pairs.append(PairAgreement(first, second, len(both), observed, cohen_kappa(a, b)))
    fleiss = None
    raters = items = 0
    if shared:
        raters = Counter(len(by) for by in shared.values()).most_common(1)[0][0]
        table = [
            [sum(1 for label in by.values() if label == category) for category in AGREEMENT_LABELS]
            for by in shared.values()
            if len(by) == raters
        ]
        items = len(table)
        fleiss = fleiss_kappa(table)
    return Agreement(
        items=len(shared),
        reviewers=reviewers,
        pairs=pairs,
        fleiss=fleiss,
        fleiss_raters=raters,
        fleiss_items=items,
    )


def reviewer_agreement(engine: Engine, batch_id: int) -> Agreement:
    """Agreement between the reviewers of a batch, on their live human decisions."""
    return agreement_from_labels(live_labels(engine, batch_id))
