"""Self-consistency: when there is no reference answer, agree with the majority.

Several candidate responses to the same problem are grouped by their final
answers; the largest group is the majority, and each candidate gets a verdict
for agreeing with it.

* ``math``: answers are extracted by math-verify and grouped by equivalence
  (`curation.mathcheck`: math-verify plus the exact numeric guards), so
  ``\\frac{1}{2}``, ``0.5`` and ``\\boxed{2/4}`` form one group. This runs in a
  math worker process (thread-safe, under a hard time limit). Each group's first
  member is the one the others are compared with, in both directions, so the
  decimal policy applies between peers (by default ``0.3333`` and ``1/3`` differ).
* other families: the whole response, with whitespace collapsed, case folded and
  trailing punctuation removed, must match exactly.

Verdicts: True "agrees with majority", False "disagrees with majority" or "no
final answer found", None when there is no majority (a tie for the largest group,
or no answers at all) or the check timed out. ``score`` is the share of
candidates in the candidate's own group.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from curation.data import Verdict
from curation.mathcheck.config import MathCheckConfig
from curation.mathcheck.pool import MathVerifyPool, shared_pool

__all__ = ["ConsistencyResult", "self_consistency"]


@dataclass
class ConsistencyResult:
    majority_answer: str | None
    #: Size of the majority group / number of candidates (0.0 when there is no majority).
    agreement: float
    #: Extracted answer per candidate (None: no answer found).
    answers: list[str | None]
    #: Candidate indices per group, largest group first.
    clusters: list[list[int]]
    verdicts: list[Verdict]
    tie: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def majority_indices(self) -> list[int]:
        return [] if self.majority_answer is None else self.clusters[0]


_SPACE = re.compile(r"\s+")


def _text_key(response: str) -> str | None:
    key = _SPACE.sub(" ", response).strip().casefold().rstrip(".!;")
    return key or None


def _group_texts(responses: Sequence[str]) -> dict[str, Any]:
    answers = [_text_key(r) for r in responses]
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(answers):
        if key is not None:
            groups.setdefault(key, []).append(i)
    return {"answers": answers, "clusters": list(groups.values())}


def self_consistency(
    responses: list[str],
    family: str = "math",
    *,
    config: MathCheckConfig | None = None,
    pool: MathVerifyPool | None = None,
) -> ConsistencyResult:
    """Group candidate responses by final answer; return the majority answer, the
    agreement rate and one verdict per candidate. Deterministic for given inputs.
    ``pool`` lets a batch job reuse its own math workers (default: the shared one)."""
    n = len(responses)
    if n == 0:
        return ConsistencyResult(None, 0.0, [], [], [])
    if family == "math":
        try:
            grouped = (pool or shared_pool(config)).cluster(responses)
        except RuntimeError as exc:
            verdict = Verdict(None, None, "timeout" if "timeout" in str(exc) else f"error: {exc}", {})
            return ConsistencyResult(None, 0.0, [None] * n, [], [verdict] * n, details={"error": str(exc)})
    else:
        grouped = _group_texts(responses)

    answers: list[str | None] = grouped["answers"]
    clusters = sorted(grouped["clusters"], key=lambda members: (-len(members), members[0]))
    cluster_of = {i: k for k, members in enumerate(clusters) for i in members}
    tie = len(clusters) > 1 and len(clusters[0]) == len(clusters[1])
    has_majority = bool(clusters) and not tie
    majority = answers[clusters[0][0]] if has_majority else None

    verdicts = []
    for i in range(n):
        k = cluster_of.get(i)
        details: dict[str, Any] = {"answer": answers[i], "cluster": k}
        if k is None:
            verdicts.append(Verdict(False, 0.0, "no final answer found", details))
            continue
        support = len(clusters[k]) / n
        details["cluster_size"] = len(clusters[k])
        if not has_majority:
            verdicts.append(Verdict(None, support, "no majority (tie)", details))
        elif k == 0:
            verdicts.append(Verdict(True, support, "agrees with majority", details))
        else:
            details["majority_answer"] = majority
            verdicts.append(Verdict(False, support, "disagrees with majority", details))

    extra = {k: v for k, v in grouped.items() if k not in ("answers", "clusters")}
    return ConsistencyResult(
        majority_answer=majority,
        agreement=len(clusters[0]) / n if has_majority else 0.0,
        answers=answers,
        clusters=clusters,
        verdicts=verdicts,
        tie=tie,
        details=extra,
    )
