"""Preference pairs for DPO-style training: ``{"prompt", "chosen", "rejected", ...provenance}``.

A pair is two candidates of the same problem (same batch, item and prompt) where one
is better than the other by one kind of evidence, looked at in this order:

1. ``human``: a reviewer accepted the chosen side and rejected the other,
2. ``verifier``: the chosen side passed verification and the other failed,
3. ``judge``: the judge scored the chosen side higher.

Each losing candidate is paired once per kind (with the winners in turn); a pair
already made by a stronger kind is not made again, and no pair prefers a rejected
or failing candidate to an accepted or passing one. Every pair records its evidence (the facts of both sides) and
the sample ids it came from, so it resolves back to the store.

Rows are plain text (``prompt``, ``chosen``, ``rejected`` strings) or, when every
sample is a conversation (``metadata.messages``), TRL's conversational form: the
prompt is the messages before the last assistant turn and each side is that turn.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from curation.export.candidates import Candidate, by_problem, candidate_facts
from curation.export.rows import batch_info
from curation.io.writers.chat import conversation
from curation.store.db import session_scope
from curation.store.models import Decision, Sample, Verdict
from curation.verification.versions import current_only

EVIDENCE_KINDS = ("human", "verifier", "judge")


@dataclass(frozen=True)
class Pair:
    chosen: Candidate
    rejected: Candidate
    evidence: str


def _winners_and_losers(group: list[Candidate], kind: str) -> tuple[list[Candidate], list[Candidate]]:
    if kind == "human":
        return [c for c in group if c.decision == "accept"], [c for c in group if c.decision == "reject"]
    if kind == "verifier":
        return [c for c in group if c.passed is True], [c for c in group if c.passed is False]
    scored = [c for c in group if c.judge_score is not None]
    if not scored:
        return [], []
    best = max(c.judge_score for c in scored)
    return [c for c in scored if c.judge_score == best], [c for c in scored if c.judge_score < best]


_REVIEW_RANK = {"accept": 2, None: 1, "skip": 1, "reject": 0}
_VERIFIER_RANK = {True: 2, None: 1, False: 0}


def _contradicts_stronger_evidence(chosen: Candidate, rejected: Candidate, kind: str) -> bool:
    """A stronger kind of evidence (a reviewer over the verifiers over the judge) ranks the
    two the other way round (equal ranks, e.g. both accepted, do not contradict)."""
    if kind == "human":
        return False
    if _REVIEW_RANK.get(chosen.decision, 1) < _REVIEW_RANK.get(rejected.decision, 1):
        return True
    return kind == "judge" and _VERIFIER_RANK[chosen.passed] < _VERIFIER_RANK[rejected.passed]


def build_pairs(candidates: Iterable[Candidate], prompts: dict[int, str]) -> list[Pair]:
    """The pairs among `candidates` (ordered as `candidate_facts` returns them);
    `prompts` maps sample id to prompt text (only candidates with the same prompt pair)."""
    pairs: list[Pair] = []
    for problem in by_problem(candidates):
        by_prompt: dict[str, list[Candidate]] = {}
        for candidate in problem:
            by_prompt.setdefault(prompts[candidate.sample_id], []).append(candidate)
        for group in by_prompt.values():
            made: set[frozenset[int]] = set()
            for kind in EVIDENCE_KINDS:
                winners, losers = _winners_and_losers(group, kind)
                if not winners:
                    continue
                for turn, rejected in enumerate(losers):
                    chosen = winners[turn % len(winners)]
                    key = frozenset((chosen.sample_id, rejected.sample_id))
                    if key in made or _contradicts_stronger_evidence(chosen, rejected, kind):
                        continue
                    made.add(key)
                    pairs.append(Pair(chosen, rejected, kind))
    return pairs


def _side_facts(
    candidate: Candidate, decisions: dict[int, Any], failed: dict[int, list[str]]
) -> dict[str, Any]:
    """The same keys for every side and every kind, so the rows have one schema."""
    decision = decisions.get(candidate.sample_id)
    return {
        "sample_id": candidate.sample_id,
        "candidate_index": candidate.candidate_index,
        "passed": candidate.passed,
        "failed_verdicts": failed.get(candidate.sample_id, []),
        "judge_score": candidate.judge_score,
        "decision": candidate.decision,
        "reviewer": decision.reviewer if decision is not None and candidate.decision else None,
        "decision_id": decision.id if decision is not None and candidate.decision else None,
    }


def _conversation(meta: dict[str, Any]) -> list[dict[str, str]] | None:
    """The stored conversation when it ends with the assistant's turn (the side a pair compares)."""
    messages = conversation(meta)
    return messages if messages and messages[-1]["role"] == "assistant" else None


def pair_rows(
    engine: Engine, batch_ids: dict[int, str], families: list[str] | None = None
) -> list[dict[str, Any]]:
    """Every preference row of the batches (see the module docstring), in problem order."""
    facts = candidate_facts(engine, batch_ids, families)
    with session_scope(engine, write=False) as session:
        prompts = dict(
            session.execute(
                select(Sample.id, Sample.prompt).where(Sample.batch_id.in_(list(batch_ids)))
            ).all()
        )
    pairs = build_pairs(facts, prompts)
    ids = sorted({c.sample_id for pair in pairs for c in (pair.chosen, pair.rejected)})
    with session_scope(engine, write=False) as session:
        samples = {s.id: s for s in session.scalars(select(Sample).where(Sample.id.in_(ids)))}
        for sample in samples.values():
            session.expunge(sample)
        decisions = {
            row.sample_id: row
            for row in session.scalars(
                select(Decision).where(Decision.sample_id.in_(ids)).order_by(Decision.id)
            )
        }
        verdicts = current_only(
            session.execute(
                select(Verdict.sample_id, Verdict.verifier, Verdict.version, Verdict.passed, Verdict.reason)
                .where(Verdict.sample_id.in_(ids))
                .order_by(Verdict.id)
            ).all(),
            sample=lambda row: row[0],
            verifier=lambda row: row[1],
            version=lambda row: row[2],
        )
    failed: dict[int, list[str]] = {}
    for sample_id, verifier, _, passed, reason in verdicts:
        if passed is False:
            failed.setdefault(sample_id, []).append(f"{verifier}: {reason or 'failed'}"[:300])
    batches = batch_info(engine, batch_ids)
    conversations = {i: _conversation(samples[i].meta or {}) for i in ids}
    chat = bool(ids) and all(conversations.values())
    rows = []
    for pair in pairs:
        chosen, rejected = samples[pair.chosen.sample_id], samples[pair.rejected.sample_id]
        info = batches[chosen.batch_id]
        if chat:
            prompt: Any = conversations[chosen.id][:-1]
            chosen_side: Any = conversations[chosen.id][-1:]
            rejected_side: Any = conversations[rejected.id][-1:]
        else:
            prompt, chosen_side, rejected_side = chosen.prompt, chosen.response, rejected.response
        rows.append(
            {
                "prompt": prompt,
                "chosen": chosen_side,
                "rejected": rejected_side,
                "id": f"pair-{chosen.id}-{rejected.id}",
                "family": chosen.family,
                "provenance": {
                    "source": "synthetic",
                    "batch": info.name,
                    "teacher": info.teacher,
                    "model": info.model,
                    "item_index": chosen.item_index,
                    "chosen_sample_id": chosen.id,
                    "rejected_sample_id": rejected.id,
                    "chosen_content_hash": chosen.content_hash,
                    "rejected_content_hash": rejected.content_hash,
                    "evidence": {
                        "kind": pair.evidence,
                        "chosen": _side_facts(pair.chosen, decisions, failed),
                        "rejected": _side_facts(pair.rejected, decisions, failed),
                    },
                },
            }
        )
    return rows


def pair_line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
