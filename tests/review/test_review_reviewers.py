"""Reviewer metrics on SQLite and PostgreSQL from a decision history with known
timestamps: count, pace without idle gaps, accept rate, kappa (worked by hand) with each
other reviewer and each verifier's current verdict, drift; the `review reviewers`
command."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from curation.review.reviewers import pace, reviewer_metrics
from curation.store import session_scope
from curation.store.models import Decision, Verdict
from tests.helpers import add_batch, cli, synthetic_rows

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
#: (reviewer, sample index, action, seconds after T0). ada: gaps 10, 20, 970 (idle), 20 →
#: pace median(10, 20, 20) = 20 s. bob: gaps 40, 60, 30 → median 40 s.
HISTORY = [
    ("ada", 0, "accept", 0),
    ("bob", 0, "accept", 5),
    ("ada", 1, "accept", 10),
    ("ada", 2, "reject", 30),
    ("bob", 1, "reject", 45),
    ("bob", 2, "reject", 105),
    ("bob", 3, "reject", 135),
    ("ada", 3, "reject", 1000),
    ("ada", 4, "accept", 1020),
]
#: The checker's verdicts per sample index (unregistered: the newest per sample is current).
CHECKER = {0: True, 1: True, 2: False, 3: False}


@pytest.fixture
def history(engine):
    batch_id, ids = add_batch(
        engine, "b", [{**row, "verdicts": []} for row in synthetic_rows(6, decision=None)]
    )
    other_batch, other_ids = add_batch(engine, "other", synthetic_rows(2, tag="o", decision=None))
    with session_scope(engine) as session:
        for reviewer, index, action, seconds in HISTORY:
            session.add(
                Decision(
                    sample_id=ids[index],
                    reviewer=reviewer,
                    action=action,
                    reason_tags=[],
                    created_at=T0 + timedelta(seconds=seconds),
                )
            )
        for index, passed in CHECKER.items():
            session.add(Verdict(sample_id=ids[index], verifier="checker", version="1", passed=not passed))
            session.flush()
            session.add(Verdict(sample_id=ids[index], verifier="checker", version="2", passed=passed))
        # Sample 4: the checker's newest verdict failed what ada accepted.
        session.add(Verdict(sample_id=ids[4], verifier="checker", version="2", passed=False))
        # Another batch's decision counts only when all batches are asked for.
        session.add(
            Decision(sample_id=other_ids[0], reviewer="cy", action="skip", reason_tags=[], created_at=T0)
        )
    return batch_id, ids


def test_count_pace_without_idle_gaps_and_accept_rate(engine, history):
    batch_id, _ = history
    metrics = reviewer_metrics(engine, batch_id)
    rows = {r.reviewer: r for r in metrics.reviewers}
    assert [r.reviewer for r in metrics.reviewers] == ["ada", "bob"]
    ada, bob = rows["ada"], rows["bob"]
    assert (ada.decisions, ada.accepted, ada.rejected, ada.skipped) == (5, 3, 2, 0)
    assert (ada.pace_seconds, ada.paced_gaps, ada.idle_gaps) == (20.0, 3, 1)
    assert ada.accept_rate == pytest.approx(3 / 5)
    assert (bob.decisions, bob.pace_seconds, bob.idle_gaps) == (4, 40.0, 0)
    assert bob.accept_rate == pytest.approx(1 / 4)
    # A higher threshold takes ada's 970 s gap into her pace: median(10, 20, 20, 970) = 20.
    wide = {r.reviewer: r for r in reviewer_metrics(engine, batch_id, idle_seconds=1000).reviewers}
    assert (wide["ada"].pace_seconds, wide["ada"].idle_gaps) == (20.0, 0)
    assert "cy" in {r.reviewer for r in reviewer_metrics(engine).reviewers}


def test_kappa_between_reviewers_and_against_the_current_verifier(engine, history):
    """ada / bob on samples 0-3: (A,A) (A,R) (R,R) (R,R). Observed 3/4; ada 2A 2R, bob
    1A 3R, so chance = (2·1 + 2·3) / 16 = 1/2 and kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2.
    ada / checker v2 on samples 0-4: (A,P) (A,P) (R,F) (R,F) (A,F): observed 4/5; ada 3A
    2R, checker 2P 3F, chance = (3·2 + 2·3) / 25 = 12/25, kappa = (20/25 - 12/25) / (13/25)
    = 8/13. The stale v1 verdicts (each the opposite) must not count."""
    batch_id, _ = history
    metrics = reviewer_metrics(engine, batch_id)
    assert metrics.kappa("ada", "bob") == pytest.approx(0.5)
    assert metrics.kappa("bob", "ada") == pytest.approx(0.5)
    (pair,) = metrics.pairs
    assert (pair.items, pair.observed) == (4, 0.75)
    verifiers = {(v.reviewer, v.verifier): v for v in metrics.verifiers}
    assert set(verifiers) == {("ada", "checker v2"), ("bob", "checker v2")}
    ada = verifiers[("ada", "checker v2")]
    assert (ada.items, ada.observed) == (5, 0.8)
    assert ada.kappa == pytest.approx(8 / 13)
    bob = verifiers[("bob", "checker v2")]
    # bob (A,P) (R,P) (R,F) (R,F): observed 3/4; bob 1A 3R, checker 2P 2F: chance 1/2, kappa 1/2.
    assert (bob.items, bob.observed, bob.kappa) == (4, 0.75, pytest.approx(0.5))


def test_drift_slices_each_reviewers_decisions_in_time_order(engine, history):
    batch_id, _ = history
    drift = [d for d in reviewer_metrics(engine, batch_id, windows=2).drift if d.reviewer == "ada"]
    # ada's slices: samples 0, 1 (A, A; bob A, R) then 2, 3, 4 (R, R, A; bob R, R, -).
    assert [(d.window, d.decisions, d.accept_rate, d.agreement, d.compared) for d in drift] == [
        (0, 2, 1.0, 0.5, 2),
        (1, 3, pytest.approx(1 / 3), 1.0, 2),
    ]
    assert (drift[1].start - drift[0].start).total_seconds() == 30  # ada's decisions at 0 s and 30 s
    assert (drift[1].end - drift[1].start).total_seconds() == 990  # … and 1020 s
    deciles = reviewer_metrics(engine, batch_id).drift
    assert len([d for d in deciles if d.reviewer == "ada"]) == 5  # fewer decisions than windows


@pytest.mark.parametrize(
    ("seconds", "idle", "expected"),
    [
        ([], 300, (None, 0, 0)),
        ([0], 300, (None, 0, 0)),
        ([0, 10, 400, 430], 300, (20.0, 2, 1)),
        ([0, 300, 600], 300, (300.0, 2, 0)),
        ([0, 301], 300, (None, 0, 1)),
    ],
)
def test_pace_is_the_median_gap_with_idle_gaps_left_out(seconds, idle, expected):
    assert pace([T0 + timedelta(seconds=s) for s in reversed(seconds)], idle) == expected


def test_the_review_reviewers_command(store_url, engine, history):
    result = cli("review", "reviewers", "--batch", "b", "--json", db=store_url)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [r["reviewer"] for r in report["reviewers"]] == ["ada", "bob"]
    assert report["reviewers"][0]["pace_seconds"] == 20.0
    assert report["pairs"][0]["kappa"] == pytest.approx(0.5)
    text = cli("review", "reviewers", "--batch", "b", "--idle-seconds", "60", db=store_url)
    assert text.returncode == 0, text.stderr
    assert "ada / bob: 0.500" in text.stdout and "gaps over 60 s" in text.stdout
