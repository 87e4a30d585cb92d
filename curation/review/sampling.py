"""Acceptance sampling: how many random samples a human must read before the
verifier-passed set of a batch can be accepted with a statistical guarantee.

The claim is "the error rate of the set is at most p, with confidence c". A
reviewer reads samples drawn uniformly at random from the set (the spot-check
pool, `curation.review.queues`); each reject is a failure. The one-sided
Clopper–Pearson upper bound of the failure rate must be at most p.

With zero failures the bound is 1 - (1 - c)^(1/n), so the smallest plan is
n = ceil(ln(1 - c) / ln(1 - p)) — 59 samples for p = 5 %, c = 95 %. Every failure
found raises the number needed (`required_sample_size`).

Pure functions first; `acceptance_summary` reads the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select

from curation.data import record_dict
from curation.review.decisions import latest_is_human
from curation.review.queues import pool_samples
from curation.store.db import session_scope
from curation.store.models import Sample

DEFAULT_MAX_ERROR = 0.05
DEFAULT_CONFIDENCE = 0.95


def _check(p: float, confidence: float) -> None:
    if not 0 < p < 1:
        raise ValueError(f"the error rate p must be between 0 and 1 (exclusive), got {p}")
    if not 0 < confidence < 1:
        raise ValueError(f"the confidence must be between 0 and 1 (exclusive), got {confidence}")


def zero_failure_sample_size(p: float, confidence: float) -> int:
    """Random samples to read, all accepted, to claim "error rate ≤ p" at `confidence`:
    n = ceil(ln(1 - c) / ln(1 - p))."""
    _check(p, confidence)
    n = math.log(1 - confidence) / math.log(1 - p)
    # Guard against ln() rounding turning an exact integer into n + 1e-15.
    return max(1, math.ceil(n - 1e-9))


def _beta_ppf(q: float, a: float, b: float) -> float:
    """scipy.stats.beta.ppf(q, a, b), computed by the function it calls,
    scipy.special.betaincinv, whose import is a fraction of scipy.stats' (the first
    page load pays it)."""
    from scipy.special import betaincinv  # heavy: scipy only once a bound is computed

    return float(betaincinv(a, b, q))


def clopper_pearson_upper(failures: int, n: int, confidence: float) -> float:
    """One-sided Clopper–Pearson upper bound of a binomial rate at `confidence`
    (the exact bound: the c-quantile of Beta(k + 1, n - k)). 1.0 when nothing has been read."""
    _check(0.5, confidence)
    if failures < 0 or n < 0 or failures > n:
        raise ValueError(f"need 0 <= failures <= n, got {failures} of {n}")
    if n == 0 or failures == n:
        return 1.0
    return _beta_ppf(confidence, failures + 1, n - failures)


def clopper_pearson_interval(failures: int, n: int, confidence: float) -> tuple[float, float]:
    """Two-sided Clopper–Pearson interval of a binomial rate at `confidence`."""
    _check(0.5, confidence)
    if failures < 0 or n < 0 or failures > n:
        raise ValueError(f"need 0 <= failures <= n, got {failures} of {n}")
    if n == 0:
        return 0.0, 1.0
    alpha = 1 - confidence
    lower = 0.0 if failures == 0 else _beta_ppf(alpha / 2, failures, n - failures + 1)
    upper = 1.0 if failures == n else _beta_ppf(1 - alpha / 2, failures + 1, n - failures)
    return lower, upper


def bound_holds(failures: int, n: int, p: float, confidence: float) -> bool:
    """True when the one-sided upper bound of the failure rate is at most p."""
    _check(p, confidence)
    return clopper_pearson_upper(failures, n, confidence) <= p


def required_sample_size(p: float, confidence: float, failures: int = 0, *, limit: int = 10_000_000) -> int:
    """The smallest n for which `failures` failures in n reads still meet the bound
    (assuming no further failures). Grows with every failure found."""
    _check(p, confidence)
    if failures == 0:
        return zero_failure_sample_size(p, confidence)
    low, high = failures + 1, max(failures + 2, zero_failure_sample_size(p, confidence))
    while not bound_holds(failures, high, p, confidence):
        low, high = high, high * 2
        if high > limit:
            raise ValueError(f"more than {limit:,} samples would be needed")
    while low < high:
        mid = (low + high) // 2
        if bound_holds(failures, mid, p, confidence):
            high = mid
        else:
            low = mid + 1
    return high


@dataclass(frozen=True)
class AcceptanceSummary:
    """Where the spot-check of a batch's verifier-passed set stands."""

    batch_id: int
    max_error: float
    confidence: float
    #: Verifier-passed samples in the batch: the set the claim is about.
    population: int
    #: Samples drawn into the random spot-check pool so far.
    pool: int
    #: Pool samples a human accepted or rejected (the latest event not a bulk one).
    reviewed: int
    failures: int
    skipped: int
    #: The zero-failure plan.
    plan: int
    #: Reads needed given the failures found so far (assuming no more).
    required: int
    upper_bound: float
    interval: tuple[float, float]

    @property
    def holds(self) -> bool:
        """The claim "error rate ≤ max_error at confidence" is supported."""
        return self.reviewed > 0 and self.upper_bound <= self.max_error

    @property
    def remaining(self) -> int:
        return max(0, self.required - self.reviewed)

    @property
    def observed_rate(self) -> float | None:
        return self.failures / self.reviewed if self.reviewed else None

    def to_dict(self) -> dict[str, Any]:
        return record_dict(self, derived=("holds", "remaining", "observed_rate"))


def acceptance_summary(
    engine: Engine,
    batch_id: int,
    max_error: float = DEFAULT_MAX_ERROR,
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    with_population: bool = True,
) -> AcceptanceSummary:
    """The acceptance-sampling state of a batch, from its spot-check pool.

    A pool sample counts with its current decision when a human made it (reject =
    failure); samples decided by a bulk action are not evidence and are left out.
    `with_population=False` skips counting the set (an index range count) for the
    live line on the review card."""
    _check(max_error, confidence)
    pool = pool_samples(batch_id)
    with session_scope(engine, write=False) as session:
        pool_size = session.scalar(select(func.count()).select_from(pool.subquery())) or 0
        counts = dict(
            session.execute(
                select(Sample.decision, func.count())
                .where(Sample.id.in_(pool), Sample.decision.is_not(None), latest_is_human(Sample.id))
                .group_by(Sample.decision)
            ).all()
        )
        population = (
            session.scalar(select(func.count()).where(Sample.batch_id == batch_id, Sample.passed.is_(True)))
            if with_population
            else 0
        ) or 0
    failures = counts.get("reject", 0)
    reviewed = failures + counts.get("accept", 0)
    return AcceptanceSummary(
        batch_id=batch_id,
        max_error=max_error,
        confidence=confidence,
        population=population,
        pool=pool_size,
        reviewed=reviewed,
        failures=failures,
        skipped=counts.get("skip", 0),
        plan=zero_failure_sample_size(max_error, confidence),
        required=required_sample_size(max_error, confidence, failures),
        upper_bound=clopper_pearson_upper(failures, reviewed, confidence),
        interval=clopper_pearson_interval(failures, reviewed, confidence),
    )
