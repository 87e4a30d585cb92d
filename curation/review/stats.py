"""Review statistics: each reviewer's live decisions and pace, each verifier's
precision and recall against human decisions, where to sample more, and the
whole picture for one batch (`review_stats`, shown by the page and the CLI).

Evidence is human decisions only: a sample whose latest event came from a bulk
action says nothing about a verifier, and bulk events are no reviewer's opinion.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from curation.data import record_dict
from curation.review.agreement import Agreement, reviewer_agreement
from curation.review.decisions import ACTIONS, human_events, latest_is_human, live_stacks
from curation.review.queues import pool_samples
from curation.review.sampling import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MAX_ERROR,
    AcceptanceSummary,
    acceptance_summary,
    clopper_pearson_interval,
)
from curation.store.db import session_scope
from curation.store.models import Sample, Verdict
from curation.verification.versions import current_clause

#: Gaps longer than this between two decisions are breaks, not reading time.
BREAK_SECONDS = 30 * 60
#: Verdicts of the overall verifier outcome (Sample.passed) are reported under this name.
ALL_VERIFIERS = "all verifiers"


@dataclass(frozen=True)
class ReviewerStats:
    reviewer: str
    #: Samples with a live decision of this reviewer.
    decided: int
    accepted: int
    rejected: int
    skipped: int
    #: Decision events, undone ones included (undo events themselves excluded).
    events: int
    #: Median seconds between consecutive decisions (breaks over 30 min left out).
    median_seconds: float | None

    @property
    def accept_rate(self) -> float | None:
        judged = self.accepted + self.rejected
        return self.accepted / judged if judged else None


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def reviewer_stats(engine: Engine, batch_id: int | None = None) -> list[ReviewerStats]:
    """Per reviewer: live decisions, accept rate, pace. Most active first."""
    events = human_events(engine, batch_id)
    live = live_stacks(events)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(ACTIONS, 0))
    for (_, reviewer), stack in live.items():
        if stack:
            counts[reviewer][stack[-1].action] += 1
    times: dict[str, list[datetime]] = defaultdict(list)
    for event in events:
        if event.undoes_id is None and event.action in ACTIONS:
            times[event.reviewer].append(event.created_at)
    result = []
    for reviewer in sorted(set(counts) | set(times)):
        stamps = sorted(times[reviewer])
        gaps = [_seconds(b, a) for a, b in zip(stamps, stamps[1:], strict=False)]
        gaps = [gap for gap in gaps if 0 <= gap <= BREAK_SECONDS]
        c = counts[reviewer]
        result.append(
            ReviewerStats(
                reviewer=reviewer,
                decided=sum(c.values()),
                accepted=c["accept"],
                rejected=c["reject"],
                skipped=c["skip"],
                events=len(stamps),
                median_seconds=statistics.median(gaps) if gaps else None,
            )
        )
    result.sort(key=lambda r: (-r.decided, r.reviewer))
    return result


@dataclass(frozen=True)
class VerifierScore:
    """A verifier's outcome against human decisions (positive = passed / accepted)."""

    verifier: str
    #: passed, human accepted
    tp: int
    #: passed, human rejected
    fp: int
    #: failed, human accepted
    fn: int
    #: failed, human rejected
    tn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float | None:
        """Of what it passed, the share humans accepted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        """Of what humans accepted, the share it passed."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def agreement(self) -> float | None:
        return (self.tp + self.tn) / self.n if self.n else None

    def to_dict(self) -> dict[str, Any]:
        return record_dict(self, derived=("n", "precision", "recall", "agreement"))


def verifier_scores(engine: Engine, batch_id: int) -> list[VerifierScore]:
    """Confusion matrix of every verifier's current version (and of the overall outcome)
    against the human accept / reject decisions of a batch. Weakest precision first."""
    judged = (
        Sample.batch_id == batch_id,
        Sample.decision.in_(("accept", "reject")),
        latest_is_human(Sample.id),
    )
    cells: dict[str, dict[tuple[bool, str], int]] = defaultdict(lambda: defaultdict(int))
    with session_scope(engine, write=False) as session:
        for verifier, version, passed, decision, n in session.execute(
            select(Verdict.verifier, Verdict.version, Verdict.passed, Sample.decision, func.count())
            .join(Verdict, Verdict.sample_id == Sample.id)
            .where(*judged, Verdict.passed.is_not(None), current_clause())
            .group_by(Verdict.verifier, Verdict.version, Verdict.passed, Sample.decision)
        ):
            cells[f"{verifier} v{version}"][(bool(passed), decision)] += n
        for passed, decision, n in session.execute(
            select(Sample.passed, Sample.decision, func.count())
            .where(*judged, Sample.passed.is_not(None))
            .group_by(Sample.passed, Sample.decision)
        ):
            cells[ALL_VERIFIERS][(bool(passed), decision)] += n
    scores = [
        VerifierScore(
            verifier=name,
            tp=c[(True, "accept")],
            fp=c[(True, "reject")],
            fn=c[(False, "accept")],
            tn=c[(False, "reject")],
        )
        for name, c in cells.items()
    ]
    scores.sort(
        key=lambda s: (s.verifier == ALL_VERIFIERS, s.precision if s.precision is not None else 2, s.verifier)
    )
    return scores


@dataclass(frozen=True)
class Slice:
    """A part of the batch with its human-found error rate and its uncertainty."""

    kind: str
    name: str
    reviewed: int
    failures: int
    interval: tuple[float, float]

    @property
    def width(self) -> float:
        return self.interval[1] - self.interval[0]


def family_slices(engine: Engine, batch_id: int, confidence: float = DEFAULT_CONFIDENCE) -> list[Slice]:
    """Error rate by family within the spot-check pool (random samples only)."""
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(Sample.family, Sample.decision, func.count())
            .where(
                Sample.id.in_(pool_samples(batch_id)),
                Sample.decision.in_(("accept", "reject")),
                latest_is_human(Sample.id),
            )
            .group_by(Sample.family, Sample.decision)
        ).all()
    by_family: dict[str, dict[str, int]] = defaultdict(lambda: {"accept": 0, "reject": 0})
    for family, decision, n in rows:
        by_family[family][decision] += n
    return [
        Slice(
            "family",
            family,
            c["accept"] + c["reject"],
            c["reject"],
            clopper_pearson_interval(c["reject"], c["accept"] + c["reject"], confidence),
        )
        for family, c in sorted(by_family.items())
    ]


def verifier_slices(scores: list[VerifierScore], confidence: float = DEFAULT_CONFIDENCE) -> list[Slice]:
    """Error rate among what each verifier passed (1 - precision), with its interval."""
    return [
        Slice(
            "verifier", s.verifier, s.tp + s.fp, s.fp, clopper_pearson_interval(s.fp, s.tp + s.fp, confidence)
        )
        for s in scores
        if s.verifier != ALL_VERIFIERS
    ]


def suggestions(summary: AcceptanceSummary, scores: list[VerifierScore], slices: list[Slice]) -> list[str]:
    """Where reading more would help most, in plain words, most useful first."""
    advice = []
    if summary.pool == 0:
        advice.append(
            f"Start the random spot-check: {summary.plan} verifier-passed samples, all accepted, support "
            f"'error rate ≤ {summary.max_error:.1%} at {summary.confidence:.0%} confidence'."
        )
    elif not summary.holds:
        advice.append(
            f"Read {summary.remaining} more random spot-check samples ({summary.reviewed} of "
            f"{summary.required} needed with {summary.failures} failure(s) so far)."
        )
    weak = [s for s in scores if s.verifier != ALL_VERIFIERS and s.precision is not None and s.fp > 0]
    if weak:
        worst = min(weak, key=lambda s: s.precision or 0)
        advice.append(
            f"Verifier {worst.verifier} is the weakest: humans rejected {worst.fp} of the {worst.tp + worst.fp} "
            f"samples it passed (precision {worst.precision:.0%}). Read more of what it passes."
        )
    open_slices = [s for s in slices if s.reviewed > 0]
    if len(open_slices) > 1:
        widest = max(open_slices, key=lambda s: s.width)
        low, high = widest.interval
        advice.append(
            f"The {widest.kind} slice '{widest.name}' is the least certain: {widest.failures} failure(s) in "
            f"{widest.reviewed} read, error rate between {low:.1%} and {high:.1%}. Sample more there."
        )
    return advice


@dataclass
class ReviewStats:
    batch_id: int
    decisions: dict[str, int]
    acceptance: AcceptanceSummary
    verifiers: list[VerifierScore]
    agreement: Agreement
    reviewers: list[ReviewerStats]
    slices: list[Slice] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "decisions": self.decisions,
            "acceptance": self.acceptance.to_dict(),
            "verifiers": [s.to_dict() for s in self.verifiers],
            "agreement": self.agreement.to_dict(),
            "reviewers": [{**asdict(r), "accept_rate": r.accept_rate} for r in self.reviewers],
            "slices": [{**asdict(s), "width": s.width} for s in self.slices],
            "suggestions": self.suggestions,
        }


def decision_counts(engine: Engine, batch_id: int) -> dict[str, int]:
    """Samples of a batch by current decision (an index-only count)."""
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(Sample.decision, func.count()).where(Sample.batch_id == batch_id).group_by(Sample.decision)
        ).all()
    counts = {"undecided": 0, **dict.fromkeys(ACTIONS, 0)}
    for decision, n in rows:
        counts[decision or "undecided"] = n
    return counts


def review_stats(
    engine: Engine,
    batch_id: int,
    max_error: float = DEFAULT_MAX_ERROR,
    confidence: float = DEFAULT_CONFIDENCE,
) -> ReviewStats:
    """Everything the review page's statistics and `review-stats` show for a batch."""
    summary = acceptance_summary(engine, batch_id, max_error, confidence)
    scores = verifier_scores(engine, batch_id)
    slices = family_slices(engine, batch_id, confidence) + verifier_slices(scores, confidence)
    slices.sort(key=lambda s: -s.width)
    return ReviewStats(
        batch_id=batch_id,
        decisions=decision_counts(engine, batch_id),
        acceptance=summary,
        verifiers=scores,
        agreement=reviewer_agreement(engine, batch_id),
        reviewers=reviewer_stats(engine, batch_id),
        slices=slices,
        suggestions=suggestions(summary, scores, slices),
    )
