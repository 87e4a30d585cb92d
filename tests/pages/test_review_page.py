"""pages/review.py under streamlit.testing.v1.AppTest, against a real SQLite store."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from curation.auth import AUTH_ENV
from curation.config import PROJECT_ROOT
from curation.review.decisions import current_decision
from curation.review.queues import Queue, draw_spot_check, next_sample
from curation.store import open_store
from curation.store.db import session_scope
from curation.store.models import Mark
from curation.store.queries import get_sample
from curation.testing.review_batches import ReviewRow, insert_review_batch
from tests.helpers import ADMIN, as_user, run_app_page

APP = str(PROJECT_ROOT / "app.py")
PAGE = "pages/review.py"
DISAGREE = [("checker", False, "wrong final answer"), ("judge", True, "good")]
PASS = [("checker", True, "correct"), ("judge", True, "good")]


@pytest.fixture
def workspace(monkeypatch, make_store_url):
    """A SQLite workspace with a batch whose first four samples the verifiers disagree on."""
    url = make_store_url("sqlite")
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    engine = open_store(url)
    rows = [
        ReviewRow(
            prompt=f"What is {i} + {i}?",
            response=f"<b>{2 * i}</b>",
            verdicts=DISAGREE if i < 4 else PASS,
            metadata={"n": i},
        )
        for i in range(70)
    ]
    batch_id, ids = insert_review_batch(engine, "review me", rows)
    with session_scope(engine) as session:
        session.add(
            Mark(
                sample_id=ids[0],
                kind="near_duplicate",
                other_sample_id=ids[5],
                score=0.93,
                reason="MinHash 0.93",
            )
        )
    return engine, batch_id, ids


def run_page(**state) -> AppTest:
    return run_app_page(PAGE, **state)


def shown(app: AppTest) -> str:
    return next(h.value for h in app.subheader if h.value.startswith("Sample "))


def test_deciding_records_and_serves_the_next_sample_then_undo(workspace):
    engine, _, ids = workspace
    app = run_page(reviewer_name="ada")
    assert shown(app) == f"Sample {ids[0]}"
    # The full context: response as text (never HTML), verdicts, the near-duplicate mark.
    assert any(code.value == "<b>0</b>" for code in app.code)
    assert any("checker v1: wrong final answer" in e.label for e in app.expander)
    assert any(f"sample {ids[5]} in review me" in e.label for e in app.expander)
    app.multiselect(key=f"review_tags_{ids[0]}").set_value(["great example"])
    app.text_input(key=f"review_note_{ids[0]}").set_value("clean")
    app.button(key="review_accept").click().run()
    assert not app.exception
    detail = get_sample(engine, ids[0])
    assert detail.decision == "accept"
    assert (detail.history[-1]["reason_tags"], detail.history[-1]["note"]) == (["great example"], "clean")
    assert shown(app) == f"Sample {ids[1]}"
    app.button(key="review_reject").click().run()
    assert current_decision(engine, ids[1]) == "reject" and shown(app) == f"Sample {ids[2]}"
    app.button(key="review_next").click().run()
    assert shown(app) == f"Sample {ids[3]}" and current_decision(engine, ids[2]) is None
    app.button(key="review_undo").click().run()
    assert current_decision(engine, ids[1]) is None
    assert shown(app) == f"Sample {ids[1]}"
    assert any("History" in e.label for e in app.expander)


def test_the_page_needs_a_reviewer_name(workspace):
    app = run_page()
    assert any("reviewer name" in info.value for info in app.info)
    assert not [h for h in app.subheader if h.value.startswith("Sample ")]


def test_spot_check_queue_draws_the_pool_and_shows_the_live_bound(workspace):
    engine, batch_id, ids = workspace
    app = run_page(reviewer_name="ada", review_queue="spot-check")
    first = int(shown(app).split()[1])
    assert first in ids[4:]  # drawn from the verifier-passed samples
    assert any("Spot-check: 0 of 59 read" in p.proto.text for p in app.get("progress"))
    app.button(key="review_accept").click().run()
    assert current_decision(engine, first) == "accept"
    assert any("Spot-check: 1 of 59 read" in p.proto.text for p in app.get("progress"))
    # Another reviewer's queue never serves the sample ada holds.
    assert next_sample(engine, as_user("bob"), Queue("spot-check", batch_id)) not in (
        first,
        int(shown(app).split()[1]),
    )


def test_accept_the_set_is_offered_only_once_the_bound_holds(workspace):
    engine, batch_id, ids = workspace
    app = run_page(reviewer_name="ada", review_tab="Acceptance")
    assert app.button(key="accept_set").disabled
    assert any("Not yet: read 59 more" in w.value for w in app.warning)
    draw_spot_check(engine, ADMIN, batch_id, 59)
    queue = Queue("spot-check", batch_id)
    from curation.review.decisions import record_decision

    while (sample_id := next_sample(engine, as_user("bob"), queue)) is not None:
        record_decision(engine, as_user("bob"), sample_id, "accept")
    app.run()
    assert any("The bound holds" in s.value for s in app.success)
    app.checkbox(key="confirm_accept_set").check().run()
    app.button(key="accept_set").click().run()
    assert not app.exception
    assert get_sample(engine, ids[-1]).decision == "accept"
    assert get_sample(engine, ids[0]).decision is None  # failed by a verifier: never bulk-accepted


@pytest.mark.parametrize("tab", ["Acceptance", "Reviewers", "Bulk actions"])
def test_every_tab_renders(workspace, tab):
    engine, _, ids = workspace
    from curation.review.decisions import record_decision

    record_decision(engine, as_user("ada"), ids[0], "accept")
    record_decision(engine, as_user("bob"), ids[0], "reject")
    app = run_page(reviewer_name="ada", review_tab=tab)
    assert not app.exception


def test_bulk_reject_from_the_page_and_its_undo(workspace):
    engine, _, ids = workspace
    app = run_page(reviewer_name="ada", review_tab="Bulk actions")
    assert "checker: wrong final answer — 4 undecided" in app.selectbox(key="bulk_reason").options
    assert app.button(key="bulk_reject").disabled
    app.checkbox(key="confirm_bulk_reject").check().run()
    app.button(key="bulk_reject").click().run()
    assert not app.exception
    assert [get_sample(engine, sample_id).decision for sample_id in ids[:5]] == ["reject"] * 4 + [None]
    undo = next(b for b in app.button if b.key and b.key.startswith("undo_bulk_"))
    undo.click().run()
    assert [get_sample(engine, sample_id).decision for sample_id in ids[:4]] == [None] * 4


def test_sign_in_is_app_wide_and_off_in_the_demo(workspace, monkeypatch):
    """The Review page has no sign-in of its own: with an [auth] section the app's sign-in
    screen stands in for every page, and under ASSAY_AUTH=none there is none at all."""
    auth = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x"}
    app = AppTest.from_file(APP, default_timeout=90)
    app.secrets["auth"] = auth
    app.run()
    app.switch_page(PAGE).run()
    assert not [b for b in app.button if b.label == "Sign in"]
    assert [t.value for t in app.title] == ["Review"]

    monkeypatch.delenv(AUTH_ENV)
    app = AppTest.from_file(APP, default_timeout=90)
    app.secrets["auth"] = auth
    app.run()
    app.switch_page(PAGE).run()
    assert [b.label for b in app.button] == ["Sign in"]
    assert [t.value for t in app.title] == ["Assay"]
