"""Review statistics from the store: verifiers against humans, reviewers' pace and
agreement, the review-stats command."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from curation.cli import main
from curation.review.agreement import reviewer_agreement
from curation.review.decisions import live_labels, record_decision, undo_last
from curation.review.queues import draw_spot_check
from curation.review.stats import ALL_VERIFIERS, review_stats, reviewer_stats, verifier_scores
from curation.store import session_scope
from curation.store.models import Decision
from curation.testing.review_batches import ReviewRow, insert_review_batch
from curation.verification.judge import JudgeVerifier
from tests.helpers import ADMIN, as_user

#: The label of the judge's current version (the review batch writes registered verifiers at it).
JUDGE = f"judge v{JudgeVerifier.version}"

# (checker, judge, human decision)
CASES = [
    (True, True, "accept"),
    (True, True, "accept"),
    (True, False, "reject"),
    (True, True, "reject"),
    (False, True, "accept"),
    (False, False, "reject"),
    (False, None, "reject"),
    (True, True, None),  # undecided: not evidence
    (True, True, "skip"),  # skipped: not evidence
]


@pytest.fixture
def judged(engine):
    rows = [
        ReviewRow(prompt=f"p{i}", response=f"r{i}", verdicts=[("checker", checker, ""), ("judge", judge, "")])
        for i, (checker, judge, _) in enumerate(CASES)
    ]
    batch_id, ids = insert_review_batch(engine, "judged", rows)
    for sample_id, (_, _, decision) in zip(ids, CASES, strict=True):
        if decision:
            record_decision(engine, as_user("ada"), sample_id, decision)
    return batch_id, ids


def test_verifier_precision_and_recall_against_humans(engine, judged):
    batch_id, _ = judged
    scores = {s.verifier: s for s in verifier_scores(engine, batch_id)}
    checker, judge, overall = scores["checker v1"], scores[JUDGE], scores[ALL_VERIFIERS]
    # checker: passed → accept 2, reject 2; failed → accept 1, reject 2
    assert (checker.tp, checker.fp, checker.fn, checker.tn) == (2, 2, 1, 2)
    assert checker.precision == pytest.approx(0.5) and checker.recall == pytest.approx(2 / 3)
    # judge: passed → accept 3, reject 1; failed → reject 2; one null verdict left out
    assert (judge.tp, judge.fp, judge.fn, judge.tn) == (3, 1, 0, 2)
    assert judge.precision == pytest.approx(0.75) and judge.recall == 1.0
    # overall (every verifier passed): samples 0, 1, 3 passed; 2, 4, 5, 6 failed
    assert (overall.tp, overall.fp, overall.fn, overall.tn) == (2, 1, 1, 3)
    # weakest first, the overall outcome last
    assert [s.verifier for s in verifier_scores(engine, batch_id)] == [
        "checker v1",
        JUDGE,
        ALL_VERIFIERS,
    ]


def test_reviewer_stats_count_live_decisions_and_median_pace(engine, judged):
    batch_id, ids = judged
    record_decision(engine, as_user("bob"), ids[7], "accept")
    record_decision(engine, as_user("bob"), ids[0], "reject")
    record_decision(engine, as_user("bob"), ids[1], "reject")
    undo_last(engine, as_user("bob"), ids[1])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope(engine) as session:
        for offset, event_id in zip([0, 10, 14, 3600 + 14], [9, 10, 11, 12], strict=True):
            session.execute(
                update(Decision)
                .where(Decision.id == event_id)
                .values(created_at=start + timedelta(seconds=offset))
            )
    stats = {r.reviewer: r for r in reviewer_stats(engine, batch_id)}
    bob = stats["bob"]
    assert (bob.decided, bob.accepted, bob.rejected, bob.skipped, bob.events) == (2, 1, 1, 0, 3)
    assert bob.accept_rate == 0.5
    # bob's decisions at 0 s, 10 s, 14 s → gaps 10 and 4 → median 7
    assert bob.median_seconds == pytest.approx(7.0)
    ada = stats["ada"]
    assert (ada.decided, ada.accepted, ada.rejected, ada.skipped) == (8, 3, 4, 1)
    assert ada.accept_rate == pytest.approx(3 / 7)


def test_agreement_uses_each_reviewers_live_decisions(engine, judged):
    batch_id, ids = judged
    # bob on the first four of ada's (accept, accept, reject, reject): accept, reject, reject, reject
    for sample_id, action in zip(ids[:4], ["accept", "reject", "reject", "accept"], strict=True):
        record_decision(engine, as_user("bob"), sample_id, action)
    undo_last(engine, as_user("bob"), ids[3])
    record_decision(engine, as_user("bob"), ids[3], "reject")
    labels = live_labels(engine, batch_id)
    assert labels[ids[3]] == {"ada": "reject", "bob": "reject"}
    agreement = reviewer_agreement(engine, batch_id)
    assert agreement.items == 4 and agreement.reviewers == ["ada", "bob"]
    assert agreement.kappa == pytest.approx(0.5)  # see test_cohen_kappa_hand_computed


def test_review_stats_command_prints_plan_bound_verifiers_and_agreement(store_url, engine, judged, capsys):
    batch_id, ids = judged
    record_decision(engine, as_user("bob"), ids[0], "accept")
    draw_spot_check(engine, ADMIN, batch_id, 3, seed=1)
    assert main(["--db", store_url, "review-stats", "--batch", "judged"]) == 0
    out = capsys.readouterr().out
    assert "zero-failure plan: read                   59" in out
    assert "Clopper–Pearson upper bound" in out
    assert "checker v1" in out and "50.0%" in out
    assert "Cohen's kappa ada / bob" in out
    assert main(["--db", store_url, "review-stats", "--batch", "judged", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["decisions"] == {"undecided": 1, "accept": 3, "reject": 4, "skip": 1}
    assert data["acceptance"]["plan"] == 59 and data["acceptance"]["pool"] == 3
    assert {v["verifier"] for v in data["verifiers"]} == {"checker v1", JUDGE, ALL_VERIFIERS}
    assert data["agreement"]["items"] == 1
    assert main(["--db", store_url, "review-stats", "--batch", "nope"]) == 1


def test_review_stats_suggest_where_to_sample(engine, judged):
    batch_id, _ = judged
    stats = review_stats(engine, batch_id)
    assert any("Start the random spot-check: 59" in s for s in stats.suggestions)
    assert any("Verifier checker v1 is the weakest" in s for s in stats.suggestions)
