"""Blind review in every page a reviewer can open, under AppTest on a real SQLite store:
the rendered page (every element's payload, tables included) and the session state
carry no verdict text and no other reviewer's decision of a blind batch; an admin's
do (the control that the search can find them). The Review page shows the batch's
guidelines and reason tags, and its settings panel to admins only."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block, Node

from curation.review.blind import NOTICE
from curation.review.decisions import record_decision
from curation.review.settings import review_settings
from curation.store import open_store
from curation.store.db import session_scope
from curation.store.models import Batch
from curation.testing.review_batches import insert_review_batch
from tests.blind import ADMIN, CANARY, DECISION_CANARY, REVIEWER, TAGS, blind_rows, make_blind_batch
from tests.helpers import run_app_page

PAGES = {
    "overview": "pages/home.py",
    "samples": "pages/samples.py",
    "review": "pages/review.py",
    "verify": "pages/verify.py",
    "diversity": "pages/diversity.py",
    "export": "pages/export.py",
}
REVIEW_TABS = ["Review", "Acceptance", "Reviewers", "Bulk actions"]


@pytest.fixture
def workspace(monkeypatch, make_store_url):
    """A blind batch (canary verdict reasons, bob's canary note), an open batch and a
    reference set."""
    url = make_store_url("sqlite")
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    monkeypatch.delenv("ASSAY_AUTH", raising=False)
    engine = open_store(url)
    reference, _ = insert_review_batch(engine, "reference", blind_rows(canary="reference"))
    with session_scope(engine) as session:
        session.get(Batch, reference).origin = "real"
    open_batch, _ = make_blind_batch(
        engine, name="open batch", blind=False, canary="open-verdict", others_decide=()
    )
    batch_id, ids = make_blind_batch(engine)
    return engine, batch_id, ids


def payload(node: Node) -> bytes:
    """Every element and block of the rendered page as its wire message, tables included."""
    data = node.proto.SerializeToString() if getattr(node, "proto", None) is not None else b""
    if isinstance(node, Block):
        data += b"".join(payload(child) for child in node.children.values())
    return data


def session_text(app: AppTest) -> str:
    return repr(app.session_state)


def run_page(page: str, actor, **state) -> AppTest:
    return run_app_page(page, **{"actor": actor, "reviewer_name": actor.name, **state})


def page_state(name: str, batch_id: int, ids: list[int]) -> list[dict]:
    """The session states that open each part of a page on the blind batch."""
    if name == "review":
        return [{"review_batch": batch_id, "review_tab": tab} for tab in REVIEW_TABS]
    if name == "samples":
        return [{"open_sample": ids[1]}, {"open_sample": ids[3], "filter_passed": ["failed"]}]
    if name == "diversity":
        return [{"diversity_sample": ids[1]}]
    if name == "verify":
        return [{"verify_sample": ids[1]}]
    return [{}]


def leaks(app: AppTest) -> list[str]:
    rendered = (
        payload(app._tree).decode("utf-8", "replace") + session_text(app) + repr(dict(app.query_params))
    )
    return [canary for canary in (CANARY, DECISION_CANARY) if canary in rendered]


@pytest.mark.parametrize("name", list(PAGES))
def test_a_reviewer_sees_no_hidden_verdict_on_any_page(workspace, name):
    engine, batch_id, ids = workspace
    for state in page_state(name, batch_id, ids):
        app = run_page(PAGES[name], REVIEWER, **state)
        assert leaks(app) == [], (name, state)
        assert "bob" not in payload(app._tree).decode("utf-8", "replace"), (name, state)
        assert any(NOTICE in c.value for c in [*app.caption, *app.info]), (name, state)


@pytest.mark.parametrize("name", ["samples", "review", "verify"])
def test_an_admin_sees_the_verdicts(workspace, name):
    engine, batch_id, ids = workspace
    found = set()
    for state in page_state(name, batch_id, ids):
        found.update(leaks(run_page(PAGES[name], ADMIN, **state)))
    assert CANARY in found


def test_after_deciding_the_reviewer_sees_that_sample(workspace):
    engine, batch_id, ids = workspace
    record_decision(engine, REVIEWER, ids[1], "accept")
    app = run_page(PAGES["samples"], REVIEWER, open_sample=ids[1])
    assert CANARY in payload(app._tree).decode("utf-8", "replace")
    app = run_page(PAGES["samples"], REVIEWER, open_sample=ids[2])
    assert leaks(app) == []


def test_the_review_card_shows_guidelines_and_the_batch_tags(workspace):
    engine, batch_id, ids = workspace
    app = run_page(PAGES["review"], REVIEWER, review_batch=batch_id)
    assert app.subheader[0].value == f"Sample {ids[0]}"
    assert app.multiselect(key=f"review_tags_{ids[0]}").options == list(TAGS)
    guidelines = [m.value for m in app.markdown if "Read the whole answer" in m.value]
    assert guidelines and "<script>" not in guidelines[0]
    assert not [m for m in app.markdown if "<script>" in m.value]
    assert any("verifiers **hidden**" in c.value for c in app.caption)
    # bob decided two samples: on a blind batch they are still open for rita, and counted.
    assert app.selectbox(key="review_queue").options == ["By cluster", "All undecided (10)"]
    assert not [e for e in app.expander if e.label == "Batch review settings"]


def test_an_admin_edits_the_settings_on_the_review_page(workspace):
    engine, batch_id, ids = workspace
    app = run_page(PAGES["review"], ADMIN, review_batch=batch_id)
    assert app.toggle(key="settings_blind").value is True
    app.toggle(key="settings_blind").set_value(False)
    app.text_area(key="settings_tags").set_value("alpha\nbeta")
    app.text_area(key="settings_guidelines").set_value("Be **kind**.")
    app.button(key="settings_save").click().run()
    assert not app.exception
    settings = review_settings(engine, batch_id)
    assert (settings.blind, settings.reason_tags, settings.guidelines, settings.updated_by) == (
        False,
        ("alpha", "beta"),
        "Be **kind**.",
        ADMIN.name,
    )
    app.text_area(key="settings_tags").set_value("same\nsame")
    app.button(key="settings_save").click().run()
    assert any("listed twice" in e.value for e in app.error)
    assert review_settings(engine, batch_id).reason_tags == ("alpha", "beta")


@pytest.mark.parametrize(("actor", "rejected"), [(REVIEWER, None), (ADMIN, 2)])
def test_overview_counts_of_a_blind_batch(workspace, actor, rejected):
    app = run_page(PAGES["overview"], actor)
    rows = app.dataframe[0].value.set_index("batch")
    value = rows.loc["blind batch", "rejected"]
    assert (None if value != value or value is None else int(value)) == rejected
    assert int(rows.loc["open batch", "samples"]) == 10
    assert app.metric[2].value == ("0" if rejected is None else "2")
