"""Batch review settings and blind review on SQLite and PostgreSQL: validation, role
refusal, what a reviewer sees before and after deciding, and that nothing hidden leaks
through queue order, queue counts, filters or browse rows."""

from __future__ import annotations

import pytest

from curation.auth import Actor, PermissionDenied, Role
from curation.data import SampleFilter
from curation.review.blind import (
    NOTICE,
    hidden_batch_ids,
    hides,
    queue_kinds,
    redact_rows,
    visible_filter,
    visible_queue,
)
from curation.review.context import review_card
from curation.review.decisions import REASON_TAGS, record_decision
from curation.review.queues import (
    BLIND_QUEUE_KINDS,
    QUEUE_KINDS,
    Queue,
    assign_round_robin,
    draw_spot_check,
    next_sample,
    queue_counts,
)
from curation.review.settings import ReviewSettings, SettingsError, review_settings, set_review_settings
from curation.store import open_store
from curation.store.queries import count_samples, query_samples
from curation.testing.review_batches import insert_review_batch
from tests.blind import (
    ADMIN,
    CANARY,
    DECISION_CANARY,
    GUIDELINES,
    KINDS,
    REVIEWER,
    TAGS,
    VIEWER,
    blind_rows,
    make_blind_batch,
)


@pytest.fixture
def plain_batch(engine):
    batch_id, _ = insert_review_batch(engine, "plain", blind_rows())
    return batch_id


def test_settings_default_when_no_row(engine, plain_batch):
    assert review_settings(engine, plain_batch) == ReviewSettings(plain_batch)
    assert review_settings(engine, plain_batch).reason_tags == REASON_TAGS
    assert not hides(engine, REVIEWER, plain_batch)


def test_admin_sets_and_changes_settings(engine, plain_batch):
    saved = set_review_settings(
        engine, ADMIN, plain_batch, blind=True, guidelines=GUIDELINES, reason_tags=TAGS
    )
    assert saved == ReviewSettings(plain_batch, True, GUIDELINES, TAGS, "ann")
    assert review_settings(engine, plain_batch) == saved
    # None keeps a field as it is.
    set_review_settings(engine, ADMIN, plain_batch, blind=False)
    assert review_settings(engine, plain_batch) == ReviewSettings(plain_batch, False, GUIDELINES, TAGS, "ann")


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ([], "at least one tag"),
        (["ok", "  "], "cannot be empty"),
        (["ok", "OK"], "listed twice"),
        (["x" * 41], "longer than 40"),
        ([f"t{i}" for i in range(31)], "at most 30"),
        ("one string", "list of tags"),
    ],
)
def test_bad_reason_tags_are_refused_naming_the_field(engine, plain_batch, tags, message):
    with pytest.raises(SettingsError, match=message) as raised:
        set_review_settings(engine, ADMIN, plain_batch, blind=True, reason_tags=tags)
    assert "reason_tags" in str(raised.value)
    assert review_settings(engine, plain_batch) == ReviewSettings(plain_batch)


def test_forty_characters_and_thirty_tags_are_fine(engine, plain_batch):
    tags = ["x" * 40, *(f"t{i}" for i in range(29))]
    assert set_review_settings(engine, ADMIN, plain_batch, reason_tags=tags).reason_tags == tuple(tags)


@pytest.mark.parametrize("actor", [REVIEWER, VIEWER])
def test_reviewers_and_viewers_may_not_change_settings(engine, plain_batch, actor):
    with pytest.raises(PermissionDenied, match="change a batch's review settings"):
        set_review_settings(engine, actor, plain_batch, blind=True)
    assert review_settings(engine, plain_batch) == ReviewSettings(plain_batch)


def test_unknown_batch_is_refused(engine):
    with pytest.raises(SettingsError, match="batch_id"):
        set_review_settings(engine, ADMIN, 999, blind=True)


def _card_text(engine, sample_id, actor) -> str:
    return repr(review_card(engine, sample_id, actor))


@pytest.mark.parametrize("actor", [REVIEWER, VIEWER, None])
def test_a_reviewer_sees_nothing_hidden_until_deciding(engine, actor):
    batch_id, ids = make_blind_batch(engine)
    assert hides(engine, actor, batch_id)
    card = review_card(engine, ids[1], actor)
    assert card.hidden
    assert (card.sample.verdicts, card.sample.passed, card.sample.decision, card.sample.history) == (
        [],
        None,
        None,
        [],
    )
    assert CANARY not in repr(card) and DECISION_CANARY not in repr(card) and "bob" not in repr(card)


def test_after_deciding_the_reviewer_sees_everything(engine):
    batch_id, ids = make_blind_batch(engine)
    record_decision(engine, REVIEWER, ids[1], "accept")
    card = review_card(engine, ids[1], REVIEWER)
    assert not card.hidden
    assert {v["reason"] for v in card.sample.verdicts} == {
        f"{CANARY}-checker-1-fail",
        f"{CANARY}-judge-1-pass",
    }
    assert [e["reviewer"] for e in card.sample.history] == ["bob", "rita"]
    # Only that sample: the next one is still hidden.
    assert review_card(engine, ids[3], REVIEWER).hidden


def test_admins_and_unblind_batches_show_everything(engine):
    batch_id, ids = make_blind_batch(engine)
    assert not hides(engine, ADMIN, batch_id)
    assert CANARY in _card_text(engine, ids[1], ADMIN) and DECISION_CANARY in _card_text(
        engine, ids[1], ADMIN
    )
    open_batch, open_ids = make_blind_batch(engine, name="open", blind=False)
    assert CANARY in _card_text(engine, open_ids[1], REVIEWER)
    assert hidden_batch_ids(engine, REVIEWER) == {batch_id}
    assert hidden_batch_ids(engine, ADMIN) == frozenset()


def test_queues_offered_on_a_blind_batch(engine):
    batch_id, ids = make_blind_batch(engine)
    assert queue_kinds(engine, ADMIN, batch_id) == [
        "disagreement",
        "uncertain",
        "spot-check",
        "failures",
        "cluster",
        "undecided",
    ]
    assert queue_kinds(engine, REVIEWER, batch_id) == ["cluster", "undecided"]
    assign_round_robin(engine, ADMIN, batch_id, ["rita"], 3)
    assert queue_kinds(engine, REVIEWER, batch_id) == ["cluster", "assigned", "undecided"]
    assert set(queue_kinds(engine, REVIEWER, batch_id)) <= set(BLIND_QUEUE_KINDS)
    draw_spot_check(engine, ADMIN, batch_id, 3, overlap=2)
    assert queue_kinds(engine, REVIEWER, batch_id) == ["spot-check", "cluster", "assigned", "undecided"]
    with pytest.raises(ValueError, match="blind queue"):
        Queue("disagreement", batch_id, blind=True)


def _walk(engine, queue, reviewer) -> list[int]:
    """The queue's order without deciding anything: next after next until it wraps."""
    served: list[int] = []
    actor = Actor(reviewer, Role.REVIEWER)
    current = next_sample(engine, actor, queue)
    while current is not None and current not in served:
        served.append(current)
        current = next_sample(engine, actor, queue, after=current)
    return served


def _reviewer_view(engine, batch_id, ids) -> dict:
    """Everything the queue picker and the queues give the reviewer, samples by position."""
    kinds = queue_kinds(engine, REVIEWER, batch_id)
    view: dict = {"kinds": kinds, "counts": queue_counts(engine, batch_id, REVIEWER.name, kinds, blind=True)}
    for kind in QUEUE_KINDS:
        queue = Queue(kind, batch_id, cluster="c1" if kind == "cluster" else None, verifier=None)
        served = _walk(engine, visible_queue(engine, REVIEWER, queue), REVIEWER.name)
        view[kind] = [ids.index(sample_id) for sample_id in served]
    return view


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    return request.param


@pytest.mark.parametrize("difference", ["verdicts", "others' decisions"])
def test_queue_order_and_counts_do_not_depend_on_hidden_fields(make_store_url, backend, difference):
    """Two stores that differ only in what the reviewer may not see give the same queues."""
    views = []
    for variant in range(2):
        engine = open_store(make_store_url(backend))
        kinds = KINDS if variant == 0 or difference != "verdicts" else list(reversed(KINDS))
        others = (1, 3) if variant == 0 or difference != "others' decisions" else (0, 2, 5, 6)
        batch_id, ids = make_blind_batch(engine, kinds=kinds, others_decide=others)
        # The same samples, by position, so the stores compare.
        views.append(_reviewer_view(engine, batch_id, ids))
    assert views[0] == views[1]
    assert views[0]["undecided"] == list(range(len(KINDS)))


def test_blind_queue_serves_what_the_reviewer_has_not_decided(engine):
    batch_id, ids = make_blind_batch(engine)
    queue = visible_queue(engine, REVIEWER, Queue("disagreement", batch_id))
    assert queue == Queue("undecided", batch_id, blind=True)
    record_decision(engine, REVIEWER, ids[0], "accept")
    assert _walk(engine, queue, REVIEWER.name) == ids[1:]
    # An admin's queue is untouched.
    assert visible_queue(engine, ADMIN, Queue("disagreement", batch_id)) == Queue("disagreement", batch_id)


def test_filters_and_rows_of_a_blind_batch(engine):
    batch_id, ids = make_blind_batch(engine)
    open_batch, open_ids = make_blind_batch(engine, name="open", blind=False)
    failed = SampleFilter(passed=[False])
    filters, left_out = visible_filter(engine, REVIEWER, failed)
    assert left_out and filters.exclude_batch_ids == [batch_id]
    rows, total = query_samples(engine, filters)
    assert {r.batch for r in rows} == {"open"} and total == count_samples(engine, filters)
    assert visible_filter(engine, ADMIN, failed) == (failed, False)
    assert visible_filter(engine, REVIEWER, SampleFilter(search="Blind")) == (
        SampleFilter(search="Blind"),
        False,
    )
    record_decision(engine, REVIEWER, ids[0], "accept")
    rows, _ = query_samples(engine, SampleFilter())
    shown, hidden = redact_rows(engine, REVIEWER, rows)
    assert hidden == set(ids[1:])
    assert all(r.passed is None and r.decision is None for r in shown if r.id in hidden)
    assert {r.id: r.decision for r in shown}[ids[0]] == "accept"
    assert {r.id: r.decision for r in shown}[open_ids[1]] == "reject"
    assert redact_rows(engine, ADMIN, rows) == (rows, frozenset())
    assert NOTICE.startswith("blind batch")


def test_a_settings_change_applies_at_once(engine):
    batch_id, ids = make_blind_batch(engine, blind=False)
    assert not review_card(engine, ids[1], REVIEWER).hidden
    set_review_settings(engine, Actor("root", Role.ADMIN), batch_id, blind=True)
    assert review_card(engine, ids[1], REVIEWER).hidden
