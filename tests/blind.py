"""A blind batch for the blind-review tests (library, pages, browser): every verdict
reason and another reviewer's note carry a canary string that must never reach a
reviewer who has not decided the sample."""

from __future__ import annotations

from sqlalchemy import Engine

from curation.auth import Actor, Role
from curation.review.decisions import record_decision
from curation.review.settings import set_review_settings
from curation.testing.review_batches import ReviewRow, insert_review_batch

CANARY = "VERDICT-CANARY"
DECISION_CANARY = "DECISION-CANARY"
ADMIN = Actor("ann", Role.ADMIN)
REVIEWER = Actor("rita", Role.REVIEWER)
VIEWER = Actor("vic", Role.VIEWER)
GUIDELINES = "## Read the whole answer\n\nReject **any** wrong final answer.\n\n<script>alert(1)</script>"
TAGS = ("wrong maths", "rambles", "lovely")

#: Verdict patterns; the two stores of the no-leak tests give the same samples different ones.
OUTCOMES = {
    "pass": [("checker", True), ("judge", True)],
    "disagree": [("checker", False), ("judge", True)],
    "uncertain": [("checker", None), ("judge", True)],
    "fail": [("checker", False), ("judge", False)],
}
KINDS = ["pass", "disagree", "uncertain", "fail", "pass", "disagree", "fail", "pass", "uncertain", "pass"]


def blind_rows(kinds: list[str] = KINDS, canary: str = CANARY) -> list[ReviewRow]:
    return [
        ReviewRow(
            prompt=f"Blind prompt {i}: what is {i} + {i}?",
            response=f"It is {2 * i}.",
            family=("math", "code")[i % 2],
            verdicts=[
                (verifier, passed, f"{canary}-{verifier}-{i}-{'pass' if passed else 'fail'}")
                for verifier, passed in OUTCOMES[kind]
            ],
            metadata={"cluster": f"c{i % 3}"},
        )
        for i, kind in enumerate(kinds)
    ]


def make_blind_batch(
    engine: Engine,
    *,
    kinds: list[str] = KINDS,
    name: str = "blind batch",
    others_decide: tuple[int, ...] = (1, 3),
    blind: bool = True,
    canary: str = CANARY,
) -> tuple[int, list[int]]:
    """A batch reviewed blind, with guidelines and tags; "bob" decided the samples at
    the positions `others_decide` (with a canary note). Returns (batch id, sample ids)."""
    batch_id, ids = insert_review_batch(engine, name, blind_rows(kinds, canary))
    set_review_settings(engine, ADMIN, batch_id, blind=blind, guidelines=GUIDELINES, reason_tags=TAGS)
    for position in others_decide:
        record_decision(engine, Actor("bob", Role.REVIEWER), ids[position], "reject", note=f"{DECISION_CANARY} bob rejected")
    return batch_id, ids
