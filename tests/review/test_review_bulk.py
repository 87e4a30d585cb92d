"""Bulk review actions on SQLite and PostgreSQL: refused until the spot-check bound
holds, one BulkEvent with a decision per sample, never over a human, undone by
appending reversing events."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from curation.review.bulk import (
    BoundNotMet,
    bulk_accept_passed,
    bulk_reject_failures,
    list_bulk_events,
    preview_accept_passed,
    preview_reject_failures,
    rejectable_reasons,
    resume_bulk,
    undo_bulk,
)
from curation.review.decisions import CLEAR, current_decision, record_decision, undo_last
from curation.review.queues import Queue, draw_spot_check, next_sample
from curation.review.sampling import acceptance_summary
from curation.review.stats import verifier_scores
from curation.store import session_scope
from curation.store.models import BulkEvent, Decision, Sample, Verdict
from curation.testing.review_batches import insert_review_batch, mixed_rows
from tests.helpers import ADMIN, as_user


@pytest.fixture
def batch(engine):
    batch_id, ids = insert_review_batch(engine, "b", mixed_rows(400))
    return batch_id, ids


def spot_check(engine, batch_id, reads, *, reject=(), reviewer="ada"):
    """Read `reads` spot-check samples; the reads whose position is in `reject` are failures."""
    queue = Queue("spot-check", batch_id)
    read = []
    for position in range(reads):
        sample_id = next_sample(engine, as_user(reviewer), queue)
        assert sample_id is not None
        record_decision(engine, as_user(reviewer), sample_id, "reject" if position in reject else "accept")
        read.append(sample_id)
    return read


def states(engine, batch_id):
    with session_scope(engine, write=False) as session:
        return dict(
            session.execute(select(Sample.id, Sample.decision).where(Sample.batch_id == batch_id)).all()
        )


def test_bulk_accept_is_refused_until_the_bound_holds(engine, batch):
    batch_id, _ = batch
    draw_spot_check(engine, ADMIN, batch_id, 120, seed=5)
    with pytest.raises(BoundNotMet, match="read 59 more"):
        bulk_accept_passed(engine, as_user("ada"), batch_id)
    spot_check(engine, batch_id, 58)
    with pytest.raises(BoundNotMet, match="read 1 more"):
        bulk_accept_passed(engine, as_user("ada"), batch_id)
    assert not acceptance_summary(engine, batch_id).holds
    spot_check(engine, batch_id, 1)
    assert acceptance_summary(engine, batch_id).holds
    with session_scope(engine, write=False) as session:
        assert session.scalar(select(func.count(BulkEvent.id))) == 0


def test_a_failure_raises_the_number_of_reads_needed(engine, batch):
    batch_id, _ = batch
    draw_spot_check(engine, ADMIN, batch_id, 120, seed=5)
    spot_check(engine, batch_id, 59, reject={10})
    summary = acceptance_summary(engine, batch_id)
    assert (summary.reviewed, summary.failures, summary.required, summary.remaining) == (59, 1, 93, 34)
    with pytest.raises(BoundNotMet):
        bulk_accept_passed(engine, as_user("ada"), batch_id)
    spot_check(engine, batch_id, 34)
    assert bulk_accept_passed(engine, as_user("ada"), batch_id).count > 0


def test_bulk_accept_is_one_event_with_a_decision_per_sample(engine, batch):
    batch_id, _ = batch
    draw_spot_check(engine, ADMIN, batch_id, 59, seed=5)
    read = spot_check(engine, batch_id, 59)
    failed = [sid for sid, d in states(engine, batch_id).items() if d is None]
    with session_scope(engine, write=False) as session:
        outside = session.scalar(
            select(Sample.id).where(
                Sample.batch_id == batch_id, Sample.passed.is_(True), Sample.id.not_in(read)
            )
        )
    record_decision(engine, as_user("bob"), outside, "reject")  # a human's opinion outside the spot-check stays
    expected = preview_accept_passed(engine, batch_id)
    scores_before = verifier_scores(engine, batch_id)
    result = bulk_accept_passed(engine, as_user("carol"), batch_id)
    assert result.count == expected > 0
    with session_scope(engine, write=False) as session:
        event = session.get(BulkEvent, result.bulk_event_id)
        assert (event.reviewer, event.action, event.count) == ("carol", "accept", expected)
        assert "accept all verifier-passed samples of batch 'b'" in event.rule
        assert event.filter["batch_id"] == batch_id and event.filter["upper_bound"] <= 0.05
        decisions = session.execute(
            select(Decision.sample_id, Decision.action, Decision.reviewer).where(
                Decision.bulk_event_id == result.bulk_event_id
            )
        ).all()
        passed = set(
            session.scalars(select(Sample.id).where(Sample.batch_id == batch_id, Sample.passed.is_(True)))
        )
    assert len(decisions) == expected
    assert {(a, r) for _, a, r in decisions} == {("accept", "carol")}
    bulk_ids = {sid for sid, _, _ in decisions}
    assert bulk_ids <= passed and not bulk_ids & {*read, outside}
    after = states(engine, batch_id)
    assert all(after[sid] == "accept" for sid in bulk_ids)
    assert after[outside] == "reject"
    assert all(after[sid] is None for sid in failed if sid not in passed)
    assert all(current_decision(engine, sid) == after[sid] for sid in list(bulk_ids)[:20])
    # Bulk decisions are no evidence about the verifiers, nor are they undone one by one.
    assert verifier_scores(engine, batch_id) == scores_before
    assert undo_last(engine, as_user("carol")) is None


def test_undo_of_a_bulk_event_appends_reversing_events(engine, batch):
    batch_id, _ = batch
    draw_spot_check(engine, ADMIN, batch_id, 59, seed=5)
    spot_check(engine, batch_id, 59)
    before = states(engine, batch_id)
    result = bulk_accept_passed(engine, as_user("carol"), batch_id)
    with session_scope(engine, write=False) as session:
        bulk_ids = list(
            session.scalars(select(Decision.sample_id).where(Decision.bulk_event_id == result.bulk_event_id))
        )
    record_decision(engine, as_user("bob"), bulk_ids[0], "reject")  # re-decided since: left alone
    undo = undo_bulk(engine, as_user("carol"), result.bulk_event_id)
    assert (undo.action, undo.count) == ("undo", len(bulk_ids) - 1)
    after = states(engine, batch_id)
    assert after[bulk_ids[0]] == "reject"
    assert {sid: d for sid, d in after.items() if sid != bulk_ids[0]} == {
        sid: d for sid, d in before.items() if sid != bulk_ids[0]
    }
    with session_scope(engine, write=False) as session:
        reversing = session.execute(
            select(Decision.action, Decision.undoes_id, Decision.sample_id).where(
                Decision.bulk_event_id == undo.bulk_event_id
            )
        ).all()
        originals = dict(
            session.execute(
                select(Decision.id, Decision.sample_id).where(Decision.bulk_event_id == result.bulk_event_id)
            ).all()
        )
        total = session.scalar(select(func.count(Decision.id)))
    assert {action for action, _, _ in reversing} == {CLEAR}
    assert all(originals[undoes] == sample_id for _, undoes, sample_id in reversing)
    assert total == 59 + len(bulk_ids) + 1 + len(reversing)  # append-only: nothing deleted
    assert current_decision(engine, bulk_ids[1]) is None
    events = list_bulk_events(engine, batch_id)
    assert [(e.action, e.undone_by) for e in events] == [("undo", None), ("accept", undo.bulk_event_id)]
    with pytest.raises(ValueError, match="already undone"):
        undo_bulk(engine, as_user("carol"), result.bulk_event_id)
    with pytest.raises(ValueError, match="cannot be undone"):
        undo_bulk(engine, as_user("carol"), undo.bulk_event_id)


def test_bulk_reject_failures_of_one_verifier_and_reason(engine, batch):
    batch_id, _ = batch
    reasons = rejectable_reasons(engine, batch_id)
    assert ("checker", "tests failed") in {(v, r) for v, r, _ in reasons}
    with session_scope(engine, write=False) as session:
        matching = set(
            session.scalars(
                select(Verdict.sample_id)
                .join(Sample, Sample.id == Verdict.sample_id)
                .where(
                    Sample.batch_id == batch_id,
                    Verdict.verifier == "checker",
                    Verdict.reason == "tests failed",
                    Verdict.passed.is_(False),
                )
            )
        )
    human = sorted(matching)[0]
    record_decision(engine, as_user("ada"), human, "accept")
    assert preview_reject_failures(engine, batch_id, "checker", "tests failed") == len(matching) - 1
    result = bulk_reject_failures(
        engine, as_user("ada"), batch_id, "checker", "tests failed", reason_tags=["wrong answer"]
    )
    assert result.count == len(matching) - 1
    after = states(engine, batch_id)
    assert after[human] == "accept"
    assert {sid for sid, d in after.items() if d == "reject"} == matching - {human}
    with session_scope(engine, write=False) as session:
        tags = session.scalars(
            select(Decision.reason_tags).where(Decision.bulk_event_id == result.bulk_event_id)
        )
        assert all(t == ["wrong answer"] for t in tags)
    undo_bulk(engine, as_user("ada"), result.bulk_event_id)
    assert {sid for sid, d in states(engine, batch_id).items() if d == "reject"} == set()


def test_bulk_actions_need_an_acting_user(engine, batch):
    with pytest.raises(TypeError, match="acting user"):
        bulk_reject_failures(engine, "ada", batch[0], "checker", "tests failed")


def test_a_bulk_action_cut_short_is_resumed_without_double_decisions(engine, batch, monkeypatch):
    """A process dying after two chunks leaves the event "applying" with those chunks
    decided; resume finishes it and every sample gets exactly one bulk decision."""
    from curation.review import bulk

    batch_id, _ = batch
    monkeypatch.setattr(bulk, "CHUNK", 7)
    real_chunk, calls = bulk._apply_chunk, []

    def dying_chunk(session, event):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real_chunk(session, event)

    monkeypatch.setattr(bulk, "_apply_chunk", dying_chunk)
    expected = preview_reject_failures(engine, batch_id, "checker", "tests failed")
    with pytest.raises(KeyboardInterrupt):
        bulk_reject_failures(engine, as_user("ada"), batch_id, "checker", "tests failed")
    [event] = list_bulk_events(engine, batch_id)
    assert (event.state, event.count) == ("applying", 14)
    assert sum(d == "reject" for d in states(engine, batch_id).values()) == 14
    monkeypatch.setattr(bulk, "_apply_chunk", real_chunk)
    result = resume_bulk(engine, ADMIN, event.id)
    assert (result.state, result.count) == ("done", expected)
    assert resume_bulk(engine, ADMIN, event.id).count == expected  # idempotent
    with session_scope(engine, write=False) as session:
        per_sample = session.execute(
            select(Decision.sample_id, func.count())
            .where(Decision.bulk_event_id == event.id)
            .group_by(Decision.sample_id)
        ).all()
    assert len(per_sample) == expected and {n for _, n in per_sample} == {1}


def test_undoing_an_unfinished_bulk_action_stops_it(engine, batch, monkeypatch):
    from curation.review import bulk

    batch_id, _ = batch
    monkeypatch.setattr(bulk, "CHUNK", 5)
    real_chunk, calls = bulk._apply_chunk, []

    def dying_chunk(session, event):
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit("killed")  # the second chunk's transaction is rolled back
        return real_chunk(session, event)

    monkeypatch.setattr(bulk, "_apply_chunk", dying_chunk)
    with pytest.raises(SystemExit):
        bulk_reject_failures(engine, as_user("ada"), batch_id, "checker", "tests failed")
    monkeypatch.setattr(bulk, "_apply_chunk", real_chunk)
    [event] = list_bulk_events(engine, batch_id)
    undo = undo_bulk(engine, as_user("ada"), event.id)
    assert undo.count == event.count == 5
    assert resume_bulk(engine, ADMIN, event.id).state == "abandoned"
    assert all(d is None for d in states(engine, batch_id).values())
    assert [e.state for e in list_bulk_events(engine, batch_id)] == ["done", "abandoned"]
