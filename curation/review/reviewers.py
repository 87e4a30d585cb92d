"""Reviewer metrics: per reviewer, how many decisions, how fast, how often accepting,
how far they agree with each other reviewer and with each verifier, and how that
drifts over their decisions.

* **count**: samples with a live decision of the reviewer (undone ones left out).
* **pace**: the median of the seconds between consecutive decision events of the
  reviewer (undone decisions count: reading them took time), gaps longer than
  `idle_seconds` left out as breaks.
* **accept rate**: accepts / (accepts + rejects) over the live decisions.
* **agreement with reviewers**: Cohen's kappa of each pair on the samples both decided
  (accept / reject), from `curation.review.agreement`.
* **agreement with verifiers**: Cohen's kappa of the reviewer against each verifier's
  current verdicts (`curation.verification.versions.current_clause`), passed = accept.
* **drift**: the reviewer's live decisions in time order cut into up to `windows`
  equal consecutive slices (deciles by default), each with its accept rate and its
  observed agreement with the other reviewers' labels on the same samples.

Human decisions only: bulk events are no reviewer's opinion.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from curation.review.agreement import AGREEMENT_LABELS, PairAgreement, agreement_from_labels, cohen_kappa
from curation.review.decisions import ACTIONS, human_events, live_stacks
from curation.store.db import session_scope
from curation.store.models import Verdict
from curation.verification.versions import current_clause

#: Gaps between two decisions longer than this are idle time, not reading time.
IDLE_SECONDS = 300.0
#: Drift slices per reviewer (deciles).
DRIFT_WINDOWS = 10
_IN_CHUNK = 900


@dataclass(frozen=True)
class ReviewerMetric:
    reviewer: str
    #: Samples with a live decision of this reviewer.
    decisions: int
    accepted: int
    rejected: int
    skipped: int
    #: Median seconds between consecutive decisions, idle gaps excluded (None: no gap counted).
    pace_seconds: float | None
    #: Gaps that made up the pace, and gaps left out as idle.
    paced_gaps: int
    idle_gaps: int

    @property
    def accept_rate(self) -> float | None:
        judged = self.accepted + self.rejected
        return self.accepted / judged if judged else None


@dataclass(frozen=True)
class VerifierAgreement:
    """A reviewer against one verifier's current verdicts (passed = accept)."""

    reviewer: str
    verifier: str
    items: int
    observed: float
    kappa: float | None


@dataclass(frozen=True)
class DriftWindow:
    reviewer: str
    #: 0-based slice index, in time order.
    window: int
    start: datetime
    end: datetime
    decisions: int
    accept_rate: float | None
    #: Share of this slice's labels matching another reviewer's label on the same sample.
    agreement: float | None
    #: Label pairs behind `agreement`.
    compared: int


@dataclass
class ReviewerMetrics:
    batch_id: int | None
    idle_seconds: float
    reviewers: list[ReviewerMetric]
    pairs: list[PairAgreement] = field(default_factory=list)
    verifiers: list[VerifierAgreement] = field(default_factory=list)
    drift: list[DriftWindow] = field(default_factory=list)

    def kappa(self, first: str, second: str) -> float | None:
        """Cohen's kappa of two reviewers (either order); None when undefined or unshared."""
        for pair in self.pairs:
            if {pair.first, pair.second} == {first, second}:
                return pair.kappa
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "idle_seconds": self.idle_seconds,
            "reviewers": [{**asdict(r), "accept_rate": r.accept_rate} for r in self.reviewers],
            "pairs": [asdict(p) for p in self.pairs],
            "verifiers": [asdict(v) for v in self.verifiers],
            "drift": [asdict(d) for d in self.drift],
        }


def pace(stamps: Sequence[datetime], idle_seconds: float = IDLE_SECONDS) -> tuple[float | None, int, int]:
    """(median seconds between consecutive stamps with gaps over `idle_seconds` left out,
    gaps counted, gaps left out)."""
    ordered = sorted(stamps)
    gaps = [(b - a).total_seconds() for a, b in zip(ordered, ordered[1:], strict=False)]
    kept = [gap for gap in gaps if gap <= idle_seconds]
    return (statistics.median(kept) if kept else None), len(kept), len(gaps) - len(kept)


def _slices(n: int, windows: int) -> Iterator[tuple[int, int]]:
    """(start, end) of up to `windows` near-equal consecutive slices of n items."""
    parts = min(windows, n)
    for i in range(parts):
        yield i * n // parts, (i + 1) * n // parts


def drift(
    reviewer: str,
    live: Sequence[Any],
    labels: Mapping[int, Mapping[str, str]],
    windows: int = DRIFT_WINDOWS,
) -> list[DriftWindow]:
    """The reviewer's live decision events (any order) in up to `windows` time slices."""
    ordered = sorted(live, key=lambda e: (e.created_at, e.id))
    result = []
    for index, (start, end) in enumerate(_slices(len(ordered), windows)):
        part = ordered[start:end]
        judged = [e for e in part if e.action in AGREEMENT_LABELS]
        accepted = sum(e.action == "accept" for e in judged)
        compared = matched = 0
        for event in judged:
            for other, label in labels.get(event.sample_id, {}).items():
                if other != reviewer and label in AGREEMENT_LABELS:
                    compared += 1
                    matched += label == event.action
        result.append(
            DriftWindow(
                reviewer=reviewer,
                window=index,
                start=part[0].created_at,
                end=part[-1].created_at,
                decisions=len(part),
                accept_rate=accepted / len(judged) if judged else None,
                agreement=matched / compared if compared else None,
                compared=compared,
            )
        )
    return result


def _current_verdicts(engine: Engine, sample_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """{sample id: {"verifier vVERSION": "accept" | "reject"}} from current, judged verdicts."""
    found: dict[int, dict[str, str]] = defaultdict(dict)
    ids = sorted(sample_ids)
    with session_scope(engine, write=False) as session:
        for offset in range(0, len(ids), _IN_CHUNK):
            for sample_id, verifier, version, passed in session.execute(
                select(Verdict.sample_id, Verdict.verifier, Verdict.version, Verdict.passed).where(
                    Verdict.sample_id.in_(ids[offset : offset + _IN_CHUNK]),
                    Verdict.passed.is_not(None),
                    current_clause(),
                )
            ):
                found[sample_id][f"{verifier} v{version}"] = "accept" if passed else "reject"
    return dict(found)


def verifier_agreement(
    labels: Mapping[int, Mapping[str, str]], verdicts: Mapping[int, Mapping[str, str]]
) -> list[VerifierAgreement]:
    """Each reviewer against each verifier on the samples both labelled (accept / reject)."""
    paired: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for sample_id, by in labels.items():
        for reviewer, label in by.items():
            if label not in AGREEMENT_LABELS:
                continue
            for verifier, outcome in verdicts.get(sample_id, {}).items():
                paired[(reviewer, verifier)].append((label, outcome))
    result = []
    for (reviewer, verifier), both in sorted(paired.items()):
        human, machine = zip(*both, strict=True)
        observed = sum(a == b for a, b in both) / len(both)
        result.append(VerifierAgreement(reviewer, verifier, len(both), observed, cohen_kappa(human, machine)))
    return result


def reviewer_metrics(
    engine: Engine,
    batch_id: int | None = None,
    *,
    idle_seconds: float = IDLE_SECONDS,
    windows: int = DRIFT_WINDOWS,
) -> ReviewerMetrics:
    """Every reviewer's metrics over one batch (or all batches), most active first."""
    if idle_seconds < 0:
        raise ValueError("the idle threshold cannot be negative")
    if windows < 1:
        raise ValueError("drift needs at least one window")
    events = human_events(engine, batch_id)
    stacks = live_stacks(events)
    live: dict[str, list[Any]] = defaultdict(list)
    labels: dict[int, dict[str, str]] = defaultdict(dict)
    for (sample_id, reviewer), stack in stacks.items():
        if stack:
            live[reviewer].append(stack[-1])
            labels[sample_id][reviewer] = stack[-1].action
    stamps: dict[str, list[datetime]] = defaultdict(list)
    for event in events:
        if event.undoes_id is None and event.action in ACTIONS:
            stamps[event.reviewer].append(event.created_at)
    rows = []
    for reviewer in sorted(set(live) | set(stamps)):
        counts = {action: sum(e.action == action for e in live[reviewer]) for action in ACTIONS}
        median, paced, idle = pace(stamps[reviewer], idle_seconds)
        rows.append(
            ReviewerMetric(
                reviewer=reviewer,
                decisions=len(live[reviewer]),
                accepted=counts["accept"],
                rejected=counts["reject"],
                skipped=counts["skip"],
                pace_seconds=median,
                paced_gaps=paced,
                idle_gaps=idle,
            )
        )
    rows.sort(key=lambda r: (-r.decisions, r.reviewer))
    verdicts = _current_verdicts(engine, list(labels))
    return ReviewerMetrics(
        batch_id=batch_id,
        idle_seconds=idle_seconds,
        reviewers=rows,
        pairs=agreement_from_labels(labels).pairs,
        verifiers=verifier_agreement(labels, verdicts),
        drift=[window for r in rows for window in drift(r.reviewer, live[r.reviewer], labels, windows)],
    )
