"""Read-side queries over verdicts: pass rates per verifier and batch, top failure
reasons, the verdict table, verifier versions and the samples whose verdict flipped
between two versions of a verifier (with the human decision they may contradict).

Only current verdicts count (`curation.verification.versions`), except in the version
queries, which are about the old ones."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.orm import aliased

from curation.store.db import session_scope
from curation.store.models import Batch, Sample, Verdict
from curation.store.queries import decision_clause
from curation.verification.runner import HIDDEN_STATUSES
from curation.verification.versions import current_clause, current_versions


@dataclass(frozen=True)
class VerifierStat:
    batch: str
    batch_id: int
    verifier: str
    version: str
    passed: int
    failed: int
    unknown: int

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.unknown

    @property
    def pass_rate(self) -> float | None:
        """Share passed among the verdicts that judged (True or False)."""
        judged = self.passed + self.failed
        return self.passed / judged if judged else None


def _visible(query: Any, batch_ids: Sequence[int] | None) -> Any:
    query = query.join(Sample, Sample.id == Verdict.sample_id).join(Batch, Batch.id == Sample.batch_id)
    query = query.where(Batch.status.not_in(HIDDEN_STATUSES))
    if batch_ids:
        query = query.where(Sample.batch_id.in_(list(batch_ids)))
    return query


def verifier_summary(engine: Engine, batch_ids: Sequence[int] | None = None) -> list[VerifierStat]:
    """Pass / fail / unknown counts per batch and verifier (current versions)."""
    query = _visible(
        select(
            Batch.name,
            Batch.id,
            Verdict.verifier,
            Verdict.version,
            func.count().filter(Verdict.passed.is_(True)),
            func.count().filter(Verdict.passed.is_(False)),
            func.count().filter(Verdict.passed.is_(None)),
        ),
        batch_ids,
    )
    query = query.where(current_clause()).group_by(Batch.name, Batch.id, Verdict.verifier, Verdict.version)
    with session_scope(engine, write=False) as session:
        rows = session.execute(query.order_by(Batch.id, Verdict.verifier)).all()
    return [VerifierStat(*row) for row in rows]


def outcome_counts(engine: Engine, batch_ids: Sequence[int] | None = None) -> dict[str, dict[str, int]]:
    """batch name -> overall outcome counts (passed, failed, unknown) of its samples."""
    query = (
        select(
            Batch.name,
            func.count().filter(Sample.passed.is_(True)),
            func.count().filter(Sample.passed.is_(False)),
            func.count().filter(Sample.passed.is_(None)),
        )
        .join(Batch, Batch.id == Sample.batch_id)
        .where(Batch.status.not_in(HIDDEN_STATUSES))
        .group_by(Batch.name, Batch.id)
        .order_by(Batch.id)
    )
    if batch_ids:
        query = query.where(Sample.batch_id.in_(list(batch_ids)))
    with session_scope(engine, write=False) as session:
        return {
            name: {"passed": p, "failed": f, "unknown": u} for name, p, f, u in session.execute(query).all()
        }


_PARENS = re.compile(r"\s*\([^()]*\)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def reason_key(verifier: str, reason: str) -> str:
    """A failure reason with its sample-specific parts removed, for counting."""
    text = (reason or "").strip() or "(no reason)"
    if "not followed: " in text:
        failed = text.split("not followed: ", 1)[1]
        parts = sorted({_PARENS.sub("", part).strip() for part in failed.split(";") if part.strip()})
        return "not followed: " + ", ".join(parts)
    if re.fullmatch(r"\d+/\d+ tests passed", text):
        return "some tests failed"
    text = _NUMBER.sub("#", text)
    return text if len(text) <= 90 else text[:89] + "…"


class ReasonCount(NamedTuple):
    verifier: str
    reason: str
    #: Samples (each has at most one current verdict per verifier).
    count: int


def failure_reasons(
    engine: Engine,
    batch_ids: Sequence[int] | None = None,
    *,
    verifier: str | None = None,
    decisions: Sequence[str] = (),
    normalise: bool = True,
    limit: int | None = 12,
) -> list[ReasonCount]:
    """The most common reasons of failed verdicts (current versions only), most common
    first, ties by verifier and reason: the Verify page's chart and the Review page's
    bulk reject list.

    `decisions` narrows to samples whose current decision is one of them ("undecided" =
    none yet). With `normalise` reasons are grouped by `reason_key` (sample-specific
    numbers and details removed); without it each exact reason text is its own row, which
    is what a bulk action selects samples by."""
    query = _visible(select(Verdict.verifier, Verdict.reason, func.count()), batch_ids)
    query = query.where(Verdict.passed.is_(False), current_clause())
    if verifier:
        query = query.where(Verdict.verifier == verifier)
    if decisions:
        query = query.where(decision_clause(decisions))
    query = query.group_by(Verdict.verifier, Verdict.reason)
    counts: Counter[tuple[str, str]] = Counter()
    with session_scope(engine, write=False) as session:
        for name, reason, count in session.execute(query):
            counts[(name, reason_key(name, reason) if normalise else reason)] += count
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [ReasonCount(name, reason, count) for (name, reason), count in ranked[:limit]]


@dataclass(frozen=True)
class VerdictRow:
    sample_id: int
    batch: str
    family: str
    passed: bool | None
    decision: str | None
    prompt: str
    verdicts: dict[str, bool | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass
class VerdictFilter:
    batch_ids: list[int] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    #: Overall outcomes to show (True / False / None); empty = all.
    outcomes: list[bool | None] = field(default_factory=list)
    #: Only samples this verifier failed.
    failed_by: str | None = None


def verdict_table(
    engine: Engine, filters: VerdictFilter, *, limit: int = 200, offset: int = 0, preview_chars: int = 160
) -> tuple[list[VerdictRow], int]:
    """Samples with their current verdicts, id order, and the total matching count."""
    versions = current_versions()
    query = (
        select(Sample.id).join(Batch, Batch.id == Sample.batch_id).where(Batch.status.not_in(HIDDEN_STATUSES))
    )
    if filters.batch_ids:
        query = query.where(Sample.batch_id.in_(filters.batch_ids))
    if filters.families:
        query = query.where(Sample.family.in_(filters.families))
    if filters.outcomes:
        query = query.where(or_(*(Sample.passed.is_(value) for value in filters.outcomes)))
    if filters.failed_by:
        failed = (
            select(Verdict.id)
            .where(
                Verdict.sample_id == Sample.id,
                Verdict.verifier == filters.failed_by,
                Verdict.passed.is_(False),
                current_clause(versions=versions),
            )
            .exists()
        )
        query = query.where(failed)
    with session_scope(engine, write=False) as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.execute(
            select(
                Sample.id,
                Batch.name,
                Sample.family,
                Sample.passed,
                Sample.decision,
                func.substr(Sample.prompt, 1, preview_chars),
            )
            .join(Batch, Batch.id == Sample.batch_id)
            .where(Sample.id.in_(query.order_by(Sample.id).offset(offset).limit(limit).scalar_subquery()))
            .order_by(Sample.id)
        ).all()
        ids = [row[0] for row in rows]
        verdicts: dict[int, dict[str, bool | None]] = defaultdict(dict)
        reasons: dict[int, dict[str, str]] = defaultdict(dict)
        if ids:
            for sample_id, name, passed, reason in session.execute(
                select(Verdict.sample_id, Verdict.verifier, Verdict.passed, Verdict.reason).where(
                    Verdict.sample_id.in_(ids), current_clause(versions=versions)
                )
            ):
                verdicts[sample_id][name] = passed
                reasons[sample_id][name] = reason
    return [
        VerdictRow(sid, batch, family, passed, decision, prompt, dict(verdicts[sid]), dict(reasons[sid]))
        for sid, batch, family, passed, decision, prompt in rows
    ], total


# -- versions -----------------------------------------------------------------------------------


def verifier_versions(
    engine: Engine, batch_ids: Sequence[int] | None = None
) -> dict[str, list[tuple[str, int]]]:
    """verifier -> [(version, verdict count)], oldest version first (by first verdict)."""
    query = _visible(
        select(Verdict.verifier, Verdict.version, func.count(), func.min(Verdict.id)), batch_ids
    ).group_by(Verdict.verifier, Verdict.version)
    out: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    with session_scope(engine, write=False) as session:
        for name, version, count, first in session.execute(query):
            out[name].append((version, count, first))
    return {
        name: [(v, c) for v, c, _ in sorted(items, key=lambda item: item[2])]
        for name, items in sorted(out.items())
    }


@dataclass(frozen=True)
class VerdictFlip:
    sample_id: int
    batch: str
    family: str
    old_passed: bool | None
    new_passed: bool | None
    old_reason: str
    new_reason: str
    decision: str | None

    @property
    def human_disagrees(self) -> bool:
        """The reviewer's decision contradicts the new verdict (accepted but now failing,
        or rejected but now passing)."""
        return (self.decision == "accept" and self.new_passed is False) or (
            self.decision == "reject" and self.new_passed is True
        )

    @property
    def change(self) -> str:
        names = {True: "pass", False: "fail", None: "unknown"}
        return f"{names[self.old_passed]} → {names[self.new_passed]}"


def verdict_flips(
    engine: Engine,
    verifier: str,
    old_version: str,
    new_version: str,
    *,
    batch_ids: Sequence[int] | None = None,
    limit: int | None = None,
) -> list[VerdictFlip]:
    """Samples whose verdict of `verifier` differs between `old_version` and `new_version`
    (samples verified by both), in sample order, with their current human decision."""
    old = aliased(Verdict)
    new = aliased(Verdict)
    query = (
        select(
            Sample.id,
            Batch.name,
            Sample.family,
            old.passed,
            new.passed,
            old.reason,
            new.reason,
            Sample.decision,
        )
        .join(old, and_(old.sample_id == Sample.id, old.verifier == verifier, old.version == old_version))
        .join(new, and_(new.sample_id == Sample.id, new.verifier == verifier, new.version == new_version))
        .join(Batch, Batch.id == Sample.batch_id)
        .where(Batch.status.not_in(HIDDEN_STATUSES), old.passed.is_distinct_from(new.passed))
        .order_by(Sample.id)
    )
    if batch_ids:
        query = query.where(Sample.batch_id.in_(list(batch_ids)))
    if limit is not None:
        query = query.limit(limit)
    with session_scope(engine, write=False) as session:
        return [VerdictFlip(*row) for row in session.execute(query).all()]


# -- one verdict, for display ---------------------------------------------------------------------


@dataclass
class VerdictView:
    """What a page shows of one verdict: key facts, a table of its parts and untrusted
    text excerpts (model output: show as code, never as HTML or markdown)."""

    facts: dict[str, Any] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)
    excerpts: dict[str, str] = field(default_factory=dict)


def _yes(value: Any) -> str:
    return {True: "pass", False: "fail", None: "—"}.get(value, str(value))


def verdict_view(verifier: str, details: dict[str, Any]) -> VerdictView:
    """The parts of a verdict's details worth a table, per verifier."""
    details = details or {}
    view = VerdictView()
    if verifier == "math_answer":
        view.facts = {
            "extracted answer": details.get("extracted"),
            "reference answer": details.get("reference"),
            "parsed answer": details.get("parsed_answer"),
            "parsed reference": details.get("parsed_reference"),
            "comparison": details.get("path"),
        }
    elif verifier == "code_tests":
        view.facts = {
            "tests passed": f"{details.get('tests_passed', '—')}/{details.get('tests_total', '—')}",
            "sandbox": details.get("sandbox"),
            "exit code": details.get("exit_code"),
            "wall ms": details.get("wall_ms"),
            "code from": details.get("code_source"),
        }
        view.table = [
            {
                "test": str(t.get("name", "")),
                "outcome": _yes(t.get("passed")),
                "error": str(t.get("error") or ""),
            }
            for t in details.get("tests") or []
            if isinstance(t, dict)
        ]
        for key in ("stdout", "stderr", "load_error"):
            if details.get(key):
                view.excerpts[key] = str(details[key])
    elif verifier == "ifeval":
        view.facts = {
            "loose verdict": _yes(details.get("loose_passed")),
            "loose score": details.get("loose_score"),
        }
        view.table = [
            {
                "constraint": str(i.get("instruction_id", "")),
                "strict": _yes(i.get("strict")),
                "loose": _yes(i.get("loose")),
                "why": str(i.get("reason") or ""),
            }
            for i in details.get("instructions") or []
            if isinstance(i, dict)
        ]
    elif verifier == "quality":
        view.table = [
            {
                "check": name,
                "outcome": _yes(result.get("passed")),
                "measures": ", ".join(f"{k}={v}" for k, v in result.items() if k != "passed"),
            }
            for name, result in (details.get("checks") or {}).items()
            if isinstance(result, dict)
        ]
    elif verifier == "judge":
        judge = details.get("judge") or {}
        view.facts = {
            "judge model": judge.get("model"),
            "score": details.get("judge_score"),
            "rule": details.get("rule"),
        }
        view.table = [
            {"criterion": name, "outcome": _yes(c.get("passed")), "reason": str(c.get("reason") or "")}
            for name, c in (details.get("criteria") or {}).items()
            if isinstance(c, dict)
        ]
        if details.get("reply_excerpt"):
            view.excerpts["judge reply"] = str(details["reply_excerpt"])
    view.facts = {k: v for k, v in view.facts.items() if v is not None}
    return view


__all__ = [
    "ReasonCount",
    "VerdictFilter",
    "VerdictFlip",
    "VerdictRow",
    "VerdictView",
    "VerifierStat",
    "failure_reasons",
    "outcome_counts",
    "reason_key",
    "verdict_flips",
    "verdict_table",
    "verdict_view",
    "verifier_summary",
    "verifier_versions",
]
