"""An admin assigns a batch's spot-check to named reviewers with overlap k (SQLite and
PostgreSQL): each pool sample goes to exactly k distinct reviewers, evenly, and a
reviewer never gets a sample twice, nor one they already decided."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from sqlalchemy import select

from curation.auth import Actor, PermissionDenied, Role
from curation.review.decisions import record_decision
from curation.review.queues import (
    CLAIM_QUEUE,
    POOL_REVIEWER,
    Queue,
    assign_spot_check,
    draw_spot_check,
    next_sample,
    pool_samples,
    spot_check,
)
from curation.store import session_scope
from curation.store.models import Assignment
from curation.testing.review_batches import ReviewRow, insert_review_batch

ADMIN = Actor("root", Role.ADMIN)
PASS = [("checker", True, "correct")]
NAMES = ["ada", "bob", "cy", "dee"]


@pytest.fixture
def pool(engine):
    batch_id, _ = insert_review_batch(
        engine, "b", [ReviewRow(prompt=f"p{i}", response=f"r{i}", verdicts=PASS) for i in range(30)]
    )
    draw_spot_check(engine, ADMIN, batch_id, 20, seed=4)
    with session_scope(engine, write=False) as session:
        ids = list(session.scalars(pool_samples(batch_id).order_by(Assignment.id)))
    return batch_id, ids


def claims(engine, batch_id) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    with session_scope(engine, write=False) as session:
        for sample_id, reviewer in session.execute(
            select(Assignment.sample_id, Assignment.reviewer).where(
                Assignment.queue == CLAIM_QUEUE, Assignment.sample_id.in_(pool_samples(batch_id))
            )
        ):
            found[sample_id].append(reviewer)
    return dict(found)


def drain(engine, batch_id, reviewer):
    served = []
    queue = Queue("spot-check", batch_id)
    while (sample_id := next_sample(engine, Actor(reviewer, Role.REVIEWER), queue)) is not None:
        assert sample_id not in served, f"{reviewer} saw sample {sample_id} twice"
        served.append(sample_id)
        record_decision(engine, Actor(reviewer, Role.REVIEWER), sample_id, "accept")
    return served


@pytest.mark.parametrize("overlap", [1, 2, 3])
def test_each_pool_sample_goes_to_k_distinct_reviewers_evenly(engine, pool, overlap):
    batch_id, ids = pool
    done = assign_spot_check(engine, ADMIN, batch_id, NAMES, overlap)
    assert (done.created, done.complete, done.short) == (20 * overlap, 20, 0)
    given = claims(engine, batch_id)
    assert set(given) == set(ids)
    assert all(len(who) == overlap == len(set(who)) for who in given.values())
    load = Counter(name for who in given.values() for name in who)
    assert set(load) == set(NAMES) and max(load.values()) - min(load.values()) <= 1
    assert done.per_reviewer == dict(load)
    assert spot_check(engine, batch_id).overlap == overlap
    # Each reviewer's spot-check queue serves exactly their claims, each once; nobody
    # else (not named) can claim beyond k.
    served = {name: drain(engine, batch_id, name) for name in NAMES}
    assert {name: sorted(s) for name, s in served.items()} == {
        name: sorted(sid for sid, who in given.items() if name in who) for name in NAMES
    }
    assert drain(engine, batch_id, "eve") == []


def test_existing_claims_and_decisions_count_and_nobody_gets_a_sample_twice(engine, pool):
    batch_id, ids = pool
    # bob decided the first pool sample elsewhere; eve (not named) opened the spot-check
    # queue and holds an open claim on the next one; fay (not named) claimed and decided the third.
    record_decision(engine, Actor("bob", Role.REVIEWER), ids[0], "reject")
    assert next_sample(engine, Actor("eve", Role.REVIEWER), Queue("spot-check", batch_id)) == ids[1]
    fay = Actor("fay", Role.REVIEWER)
    assert next_sample(engine, fay, Queue("spot-check", batch_id)) == ids[2]
    record_decision(engine, fay, ids[2], "accept")
    done = assign_spot_check(engine, ADMIN, batch_id, ["ada", "bob", "cy"], 2)
    assert (done.created, done.short) == (2 + 2 + 1 + 17 * 2, 0)
    given = claims(engine, batch_id)
    assert sorted(given[ids[0]]) == ["ada", "cy"]
    assert "eve" not in given[ids[1]] and len(given[ids[1]]) == 2  # the open claim was released
    assert "fay" in given[ids[2]] and len(given[ids[2]]) == 2  # a decided claim counts
    assert all(len(set(who)) == len(who) == 2 for who in given.values())
    # Again: nothing left to do. After the pool grows, only the new samples are assigned.
    assert assign_spot_check(engine, ADMIN, batch_id, ["ada", "bob", "cy"], 2).created == 0
    draw_spot_check(engine, ADMIN, batch_id, 25)
    assert assign_spot_check(engine, ADMIN, batch_id, ["ada", "bob", "cy"], 2).created == 10
    assert all(len(set(who)) == len(who) == 2 for who in claims(engine, batch_id).values())
    assert len(claims(engine, batch_id)) == 25


def test_too_few_unseen_reviewers_leaves_a_sample_short(engine, pool):
    batch_id, ids = pool
    record_decision(engine, Actor("ada", Role.REVIEWER), ids[3], "accept")
    done = assign_spot_check(engine, ADMIN, batch_id, ["ada", "bob"], 2)
    assert (done.short, done.complete) == (1, 19)
    assert claims(engine, batch_id)[ids[3]] == ["bob"]


@pytest.mark.parametrize(
    ("actor", "names", "overlap", "error"),
    [
        (Actor("bob", Role.REVIEWER), NAMES, 2, PermissionDenied),
        (ADMIN, ["ada", "bob"], 3, ValueError),
        (ADMIN, ["ada", "ada"], 2, ValueError),
        (ADMIN, [], 1, ValueError),
        (ADMIN, [POOL_REVIEWER], 1, ValueError),
        (ADMIN, NAMES, 0, ValueError),
    ],
)
def test_refused_before_anything_changes(engine, pool, actor, names, overlap, error):
    batch_id, _ = pool
    with pytest.raises(error):
        assign_spot_check(engine, actor, batch_id, names, overlap)
    assert claims(engine, batch_id) == {}
    assert spot_check(engine, batch_id).overlap == 1


def test_a_batch_without_a_pool_is_refused(engine):
    batch_id, _ = insert_review_batch(engine, "no pool", [ReviewRow(prompt="p", response="r", verdicts=PASS)])
    with pytest.raises(ValueError, match="draw the batch's spot-check pool first"):
        assign_spot_check(engine, ADMIN, batch_id, NAMES, 2)
