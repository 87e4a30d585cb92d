"""Review queues on SQLite and PostgreSQL: order, exclusion of decided samples, the
seeded spot-check pool with claims and overlap, assignments, concurrent reviewers."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest
from sqlalchemy import func, select

from curation.review.decisions import record_decision, undo_last
from curation.review.queues import (
    CLAIM_QUEUE,
    Queue,
    assign_round_robin,
    available_queues,
    cluster_key,
    cluster_labels,
    draw_spot_check,
    first_queue_with_work,
    next_sample,
    queue_count,
    queue_counts,
    queue_remaining,
    spot_check,
)
from curation.store import open_store, session_scope
from curation.store.models import Assignment, Decision, Sample
from curation.testing.review_batches import ReviewRow, insert_review_batch, mixed_rows
from tests.helpers import ADMIN, as_user

PASS = [("quality", True, "ok"), ("checker", True, "correct"), ("judge", True, "good")]
VERDICTS = {
    "pass": PASS,
    "disagree": [("quality", True, "ok"), ("checker", False, "wrong final answer"), ("judge", True, "good")],
    "uncertain": [("quality", True, "ok"), ("checker", None, "timeout"), ("judge", True, "good")],
    "fail": [("quality", False, "too short"), ("checker", False, "tests failed"), ("judge", False, "poor")],
    "judge-fails": [("quality", True, "ok"), ("checker", True, "correct"), ("judge", False, "poor")],
}
KINDS = [
    "pass",
    "disagree",
    "uncertain",
    "fail",
    "pass",
    "judge-fails",
    "pass",
    "fail",
    "pass",
    "pass",
    "uncertain",
    "pass",
]


def rows(kinds=KINDS, clusters=True):
    for i, kind in enumerate(kinds):
        yield ReviewRow(
            prompt=f"prompt {i}",
            response=f"response {i} ({kind})",
            family=("math", "code")[i % 2],
            verdicts=VERDICTS[kind],
            metadata={"cluster": f"c{i % 2}"} if clusters else {},
        )


@pytest.fixture
def batch(engine):
    batch_id, ids = insert_review_batch(engine, "b", rows())
    return batch_id, ids


def ids_of(ids, *kinds):
    return [sid for sid, kind in zip(ids, KINDS, strict=True) if kind in kinds]


def drain(engine, queue, reviewer, action="accept"):
    """Decide everything the queue serves, in order."""
    served = []
    while (sample_id := next_sample(engine, as_user(reviewer), queue)) is not None:
        assert sample_id not in served, "a decided sample came back"
        served.append(sample_id)
        record_decision(engine, as_user(reviewer), sample_id, action)
    return served


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("disagreement", ("disagree", "judge-fails")),
        ("uncertain", ("uncertain",)),
        ("failures", ("disagree", "fail", "judge-fails")),
        ("undecided", tuple(VERDICTS)),
    ],
)
def test_shared_queues_serve_in_order_and_skip_decided(engine, batch, kind, expected):
    batch_id, ids = batch
    wanted = ids_of(ids, *expected)
    # Someone already decided the first one (in another queue): it is not served.
    record_decision(engine, as_user("bob"), wanted[0], "reject")
    queue = Queue(kind, batch_id)
    assert drain(engine, queue, "ada") == wanted[1:]
    assert next_sample(engine, as_user("ada"), queue) is None


def test_queue_counts_match_what_each_queue_serves(engine, batch):
    batch_id, ids = batch
    record_decision(engine, as_user("bob"), ids_of(ids, "disagree")[0], "reject")
    counts = queue_counts(engine, batch_id, "ada", available_queues(engine, batch_id))
    assert counts == {
        "disagreement": 1,
        "uncertain": 2,
        "spot-check": None,  # no pool yet: opening the queue draws one
        "failures": 3,
        "cluster": None,
        "undecided": 11,
    }
    assert queue_counts(engine, batch_id, "", ["spot-check", "undecided"]) == {
        "spot-check": None,
        "undecided": 11,
    }
    assert queue_count(engine, Queue("uncertain", batch_id), "ada", cap=1) == 2  # more than the cap


@pytest.mark.parametrize(
    ("counts", "after", "expected"),
    [
        ({"disagreement": 0, "uncertain": None, "failures": 3, "undecided": 9}, None, "failures"),
        ({"disagreement": 2, "failures": 3, "undecided": 9}, None, "disagreement"),
        ({"disagreement": 0, "failures": 3, "undecided": 9}, "failures", "undecided"),
        ({"disagreement": 4, "failures": 0, "undecided": 0}, "failures", "disagreement"),
        ({"disagreement": 0, "failures": 3}, "failures", None),
        ({"disagreement": 0, "undecided": 0}, None, None),
    ],
)
def test_first_queue_with_work_wraps_round_and_skips_the_current_one(counts, after, expected):
    assert first_queue_with_work(counts, after=after) == expected


def test_next_without_deciding_walks_the_queue_and_wraps(engine, batch):
    batch_id, ids = batch
    queue = Queue("failures", batch_id)
    failures = ids_of(ids, "disagree", "fail", "judge-fails")
    walked, current = [], None
    for _ in range(len(failures) + 1):
        current = next_sample(engine, as_user("ada"), queue, after=current)
        walked.append(current)
    assert walked == failures + failures[:1]
    assert queue_remaining(engine, queue, "ada") == len(failures)


def test_failures_of_one_verifier_and_the_cluster_queue(engine, batch):
    batch_id, ids = batch
    assert drain(engine, Queue("failures", batch_id, verifier="judge"), "ada") == ids_of(
        ids, "fail", "judge-fails"
    )
    assert cluster_key(engine, batch_id) == "cluster"
    assert sorted(cluster_labels(engine, batch_id)) == [("c0", 6), ("c1", 3)]  # undecided only
    served = drain(engine, Queue("cluster", batch_id, cluster="c1"), "ada")
    assert served == [
        sid for i, sid in enumerate(ids) if i % 2 == 1 and KINDS[i] not in ("fail", "judge-fails")
    ]
    assert "cluster" in available_queues(engine, batch_id)


def test_cluster_and_assigned_queues_are_hidden_when_meaningless(engine):
    batch_id, _ = insert_review_batch(engine, "plain", rows(clusters=False))
    assert available_queues(engine, batch_id) == [
        "disagreement",
        "uncertain",
        "spot-check",
        "failures",
        "undecided",
    ]


def test_spot_check_pool_is_seeded_reproducible_and_drawn_from_the_passed_set(engine, make_store_url):
    batch_id, ids = insert_review_batch(engine, "big", mixed_rows(300))
    other = open_store(make_store_url("sqlite"))
    other_batch, other_ids = insert_review_batch(other, "big", mixed_rows(300))

    def pool(eng, bid, sample_ids):
        with session_scope(eng, write=False) as session:
            rows = session.scalars(
                select(Assignment.sample_id)
                .join(Sample, Sample.id == Assignment.sample_id)
                .where(Assignment.reviewer == "@spot-check", Sample.batch_id == bid)
                .order_by(Assignment.id)
            )
            return [sample_ids.index(sid) for sid in rows]

    draw_spot_check(engine, ADMIN, batch_id, 20, seed=7)
    draw_spot_check(other, ADMIN, other_batch, 20, seed=7)
    first = pool(engine, batch_id, ids)
    assert first == pool(other, other_batch, other_ids)
    assert len(set(first)) == 20
    with session_scope(engine, write=False) as session:
        passed = set(
            session.scalars(select(Sample.id).where(Sample.batch_id == batch_id, Sample.passed.is_(True)))
        )
    assert {ids[i] for i in first} <= passed
    grown = draw_spot_check(engine, ADMIN, batch_id, 35)
    assert (grown.size, grown.seed, grown.overlap) == (35, 7, 1)
    assert pool(engine, batch_id, ids)[:20] == first
    batch_2, ids_2 = insert_review_batch(engine, "big-2", mixed_rows(300))
    draw_spot_check(engine, ADMIN, batch_2, 20, seed=8)
    assert pool(engine, batch_2, ids_2) != first


def test_spot_check_reviewers_get_different_samples_and_keep_their_claims(engine, batch):
    batch_id, ids = batch
    draw_spot_check(engine, ADMIN, batch_id, 4, seed=1)
    queue = Queue("spot-check", batch_id)
    ada = next_sample(engine, as_user("ada"), queue)
    bob = next_sample(engine, as_user("bob"), queue)
    assert ada != bob
    # Asking again without deciding returns the open claim, not a new sample.
    assert next_sample(engine, as_user("ada"), queue) == ada
    record_decision(engine, as_user("ada"), ada, "accept")
    second = next_sample(engine, as_user("ada"), queue)
    assert second not in (ada, bob)
    # Undo reopens the sample for its reviewer, first in their claim order.
    undo_last(engine, as_user("ada"), ada)
    assert next_sample(engine, as_user("ada"), queue) == ada
    assert queue_remaining(engine, queue, "ada") == 3  # two open claims, one claimable
    assert queue_remaining(engine, queue, "bob") == 2


def test_overlap_sends_each_spot_check_sample_to_k_reviewers(engine, batch):
    batch_id, _ = batch
    draw_spot_check(engine, ADMIN, batch_id, 3, seed=2, overlap=2)
    assert spot_check(engine, batch_id).overlap == 2
    queue = Queue("spot-check", batch_id)
    served = {name: drain(engine, queue, name) for name in ("ada", "bob", "cy")}
    assert sum(len(s) for s in served.values()) == 6
    assert all(n == 2 for n in Counter(sid for s in served.values() for sid in s).values())
    # Drained one after the other: the first two reviewers read all three, the third none.
    assert sorted(served["ada"]) == sorted(served["bob"]) and served["cy"] == []


def test_assigned_queue_serves_each_reviewer_their_samples(engine, batch):
    batch_id, ids = batch
    assert assign_round_robin(engine, ADMIN, batch_id, ["ada", "bob"], 6) == 6
    assert "assigned" in available_queues(engine, batch_id)
    queue = Queue("assigned", batch_id)
    assert queue_remaining(engine, queue, "ada") == 3
    assert drain(engine, queue, "ada") == ids[0:6:2]
    assert drain(engine, queue, "bob") == ids[1:6:2]
    # The next call assigns fresh samples, never those already assigned.
    assert assign_round_robin(engine, ADMIN, batch_id, ["ada"], 2) == 2
    assert drain(engine, queue, "ada") == ids[6:8]


@pytest.mark.parametrize("name", ["", "  ", "@spot-check"])
def test_reserved_or_empty_reviewer_names_are_refused(engine, batch, name):
    with pytest.raises(ValueError):
        next_sample(engine, as_user(name), Queue("undecided", batch[0]))


def _review_spot_check(url: str, batch_id: int, reviewer: str, start) -> None:  # noqa: ANN001 - a Barrier
    engine = open_store(url)
    queue = Queue("spot-check", batch_id)
    start.wait(timeout=120)
    while (sample_id := next_sample(engine, as_user(reviewer), queue)) is not None:
        record_decision(engine, as_user(reviewer), sample_id, ("accept", "reject")[sample_id % 2])


@pytest.mark.parametrize("overlap", [1, 2])
def test_concurrent_reviewers_pull_from_the_spot_check_without_collisions(store_url, overlap):
    """Three reviewer processes drain the spot-check queue at once: with overlap 1
    every pool sample is read exactly once, with overlap 2 by exactly two reviewers;
    every decision is recorded."""
    engine = open_store(store_url)
    batch_id, _ = insert_review_batch(engine, "shared", mixed_rows(200))
    pool = draw_spot_check(engine, ADMIN, batch_id, 40, seed=3, overlap=overlap).size
    ctx = multiprocessing.get_context("spawn")
    reviewers = ["ada", "bob", "cy"]
    start = ctx.Barrier(len(reviewers))
    processes = [
        ctx.Process(target=_review_spot_check, args=(store_url, batch_id, name, start)) for name in reviewers
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
        assert process.exitcode == 0
    with session_scope(engine, write=False) as session:
        decided = session.execute(select(Decision.sample_id, Decision.reviewer)).all()
        claims = session.execute(
            select(Assignment.sample_id, func.count())
            .where(Assignment.queue == CLAIM_QUEUE)
            .group_by(Assignment.sample_id)
        ).all()
    assert len(decided) == pool * overlap
    assert len(set(decided)) == len(decided), "a reviewer read the same sample twice"
    per_sample = Counter(sample_id for sample_id, _ in decided)
    assert len(per_sample) == pool and set(per_sample.values()) == {overlap}
    assert {n for _, n in claims} == {overlap}
    assert len({reviewer for _, reviewer in decided}) > 1, "the reviewers did not overlap in time"
    assert next_sample(engine, as_user("ada"), Queue("spot-check", batch_id)) is None
    with session_scope(engine, write=False) as session:
        decisions = session.scalars(select(Sample.decision).where(Sample.id.in_(list(per_sample))))
        assert set(decisions) <= {"accept", "reject"}
