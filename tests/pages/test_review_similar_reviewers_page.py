"""pages/review.py under AppTest on a real SQLite store: the card's "Similar samples"
section (neighbours across batches with decisions; "Apply my decision to these N" for
admins only, confirmed, undoable) and the Reviewers tab (kappa, pace, plots, the
admin's spot-check assignment with overlap)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from curation.auth import Actor, Role
from curation.diversity.embed import DEFAULT_MODEL, cache_key, encode_vectors
from curation.review.queues import CLAIM_QUEUE, draw_spot_check, pool_samples
from curation.review.similar import clear_cache
from curation.store import open_store
from curation.store.db import session_scope
from curation.store.models import Assignment, BulkEvent, Decision, Embedding, Sample
from curation.store.queries import get_sample
from curation.testing.review_batches import ReviewRow, insert_review_batch
from tests.helpers import run_app_page

PAGE = "pages/review.py"
DISAGREE = [("checker", False, "wrong final answer"), ("judge", True, "good")]
PASS = [("checker", True, "correct"), ("judge", True, "good")]
DIM = 6

ADMIN = Actor("root", Role.ADMIN)


@pytest.fixture
def workspace(monkeypatch, make_store_url):
    """Batch "older" (4) and then "review me" (8 samples the verifiers disagree on; the
    newest, so the page opens on it), all embedded; older[2] is a near-duplicate of the
    first sample of "review me"."""
    url = make_store_url("sqlite")
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    clear_cache()
    engine = open_store(url)
    _, older = insert_review_batch(
        engine,
        "older",
        [ReviewRow(prompt=f"Older {i}", response=f"old {i}", verdicts=PASS) for i in range(4)],
    )
    _, ids = insert_review_batch(
        engine,
        "review me",
        [
            ReviewRow(prompt=f"<b>Question {i}</b>", response=f"answer {i}", verdicts=DISAGREE)
            for i in range(8)
        ],
    )
    rng = np.random.default_rng(3)
    vectors = {sample_id: rng.normal(size=DIM) for sample_id in ids + older}
    vectors[older[2]] = vectors[ids[0]] + 0.001
    with session_scope(engine) as session:
        hashes = dict(session.execute(select(Sample.id, Sample.content_hash)).all())
        for sample_id, blob in zip(
            vectors, encode_vectors(np.stack(list(vectors.values())), dtype="float32"), strict=True
        ):
            session.add(
                Embedding(
                    model=cache_key(DEFAULT_MODEL), content_hash=hashes[sample_id], dim=DIM, vector=blob
                )
            )
    return engine, ids, older


def run_page(**state) -> AppTest:
    return run_app_page(PAGE, **state)


def similar_frames(app: AppTest) -> list:
    return [frame.value for frame in app.dataframe if "similarity" in frame.value.columns]


def test_similar_samples_and_apply_my_decision_then_undo(workspace, monkeypatch):
    engine, ids, older = workspace
    monkeypatch.setenv("ASSAY_AUTH", "none")  # single-user: the sidebar's name is an admin
    app = run_page(reviewer_name="ada", review_similar=True)
    (frame,) = similar_frames(app)
    assert frame["sample"].iloc[0] == older[2]
    assert (frame["batch"].iloc[0], frame["decision"].iloc[0]) == ("older", "undecided")
    assert ids[0] not in set(frame["sample"])
    assert "<b>Question 1</b>" in set(frame["prompt"])  # plain text in a table cell, never HTML
    assert any("Decide this sample" in c.value for c in app.caption)
    assert not [b for b in app.button if b.key and b.key.startswith("similar_apply_")]

    app.button(key="review_accept").click().run()
    assert not app.exception
    assert any(f"Similar to sample {ids[0]}, which you decided: accept" in m.value for m in app.markdown)
    listed = set(similar_frames(app)[-1]["sample"])
    apply = app.button(key=f"similar_apply_{ids[0]}")
    assert apply.disabled and apply.label == f"Apply my decision to these {len(listed)}"
    app.checkbox(key=f"similar_confirm_{ids[0]}").check().run()
    app.button(key=f"similar_apply_{ids[0]}").click().run()
    assert not app.exception
    with session_scope(engine, write=False) as session:
        (event,) = session.scalars(select(BulkEvent)).all()
        assert (event.action, event.count, event.reviewer) == ("accept", len(listed), "ada")
        assert session.scalar(select(func.count()).where(Decision.bulk_event_id == event.id)) == len(listed)
    assert {get_sample(engine, sample_id).decision for sample_id in listed} == {"accept"}

    app.button(key="similar_undo").click().run()
    assert not app.exception
    assert {get_sample(engine, sample_id).decision for sample_id in listed} == {None}
    assert get_sample(engine, ids[0]).decision == "accept"  # ada's own decision stays


def test_apply_is_not_offered_to_a_reviewer(workspace, monkeypatch):
    monkeypatch.delenv("ASSAY_AUTH", raising=False)
    engine, ids, _ = workspace
    app = run_page(reviewer_name="bob", actor=Actor("bob", Role.REVIEWER), review_similar=True)
    app.button(key="review_reject").click().run()
    assert not app.exception
    assert similar_frames(app)
    assert not [b for b in app.button if b.key and b.key.startswith("similar_apply_")]
    assert any("bulk action, for admins" in c.value for c in app.caption)


def test_a_sample_without_embeddings_says_how_to_embed(workspace):
    engine, ids, _ = workspace
    with session_scope(engine) as session:
        session.execute(Embedding.__table__.delete())
    app = run_page(reviewer_name="ada", review_similar=True)
    assert any("python -m curation embed --batch 'review me'" in i.value for i in app.info)


def test_reviewers_tab_shows_kappa_pace_and_plots(workspace, monkeypatch):
    engine, ids, _ = workspace
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    labels = {
        "ada": ["accept", "accept", "reject", "reject"],
        "bob": ["accept", "reject", "reject", "reject"],
    }
    with session_scope(engine) as session:
        for offset, (who, actions) in enumerate(labels.items()):
            for i, action in enumerate(actions):
                session.add(
                    Decision(
                        sample_id=ids[i],
                        reviewer=who,
                        action=action,
                        reason_tags=[],
                        created_at=t0 + timedelta(seconds=offset + 30 * i),
                    )
                )
    app = run_page(reviewer_name="ada", review_tab="Reviewers")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Cohen's kappa"] == "0.500"
    table = next(f.value for f in app.dataframe if "pace (median s)" in f.value.columns)
    assert dict(zip(table["reviewer"], table["pace (median s)"], strict=True)) == {"ada": 30.0, "bob": 30.0}
    assert len(app.get("plotly_chart")) == 4  # pace, drift, reviewer kappa, verifier kappa


def test_admin_assigns_the_spot_check_with_overlap(workspace, monkeypatch):
    monkeypatch.setenv("ASSAY_AUTH", "none")
    engine, _, older = workspace
    batch_older = get_sample(engine, older[0]).batch_id
    draw_spot_check(engine, ADMIN, batch_older, 4)
    app = run_page(reviewer_name="root", review_batch=batch_older, review_tab="Reviewers")
    app.text_input(key="spot_assign_names").set_value("ada, bob, cy").run()
    app.number_input(key="spot_assign_k").set_value(2).run()
    app.button(key="spot_assign").click().run()
    assert not app.exception
    assert any("Assigned the spot-check with overlap 2: 8 claims" in t.value for t in app.text)
    with session_scope(engine, write=False) as session:
        claims = session.execute(
            select(Assignment.sample_id, func.count())
            .where(Assignment.queue == CLAIM_QUEUE, Assignment.sample_id.in_(pool_samples(batch_older)))
            .group_by(Assignment.sample_id)
        ).all()
    assert len(claims) == 4 and {n for _, n in claims} == {2}


def test_the_assignment_form_is_for_admins_only(workspace, monkeypatch):
    monkeypatch.delenv("ASSAY_AUTH", raising=False)
    app = run_page(reviewer_name="bob", actor=Actor("bob", Role.REVIEWER), review_tab="Reviewers")
    assert any("Assigning the spot-check is for admins." in c.value for c in app.caption)
    assert not [b for b in app.button if b.key == "spot_assign"]


def test_a_decision_clicked_after_the_session_expired_is_not_recorded(workspace, monkeypatch):
    monkeypatch.delenv("ASSAY_AUTH", raising=False)
    engine, ids, _ = workspace
    app = run_page(reviewer_name="bob", actor=Actor("bob", Role.REVIEWER))
    app.session_state["signed_in_at"] = 0.0  # the session ran out while the page was open
    app.button(key="review_accept").click().run()
    assert not app.exception
    assert get_sample(engine, ids[0]).decision is None
    assert [h.value for h in app.subheader] == ["Sign in"]  # the sign-in screen, not the page
