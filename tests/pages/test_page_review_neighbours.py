"""pages/review.py under AppTest: a failing nearest-neighbour lookup is shown on the card
as an error and logged, and the rest of the card still shows."""

from __future__ import annotations

import logging

from streamlit.testing.v1 import AppTest

from curation.config import PROJECT_ROOT
from curation.diversity import neighbours as diversity_neighbours
from curation.store import open_store
from curation.testing.review_batches import ReviewRow, insert_review_batch

DISAGREE = [("checker", False, "wrong final answer"), ("judge", True, "good")]


def broken_lookup(engine, sample_id, k=5):
    raise RuntimeError("the embedding cache is corrupt")


def test_a_failing_neighbour_lookup_is_an_error_on_the_card(monkeypatch, make_store_url, caplog):
    url = make_store_url("sqlite")
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    insert_review_batch(
        open_store(url), "review me", [ReviewRow(prompt="What is 1 + 1?", response="2", verdicts=DISAGREE)]
    )
    monkeypatch.setattr(diversity_neighbours, "nearest_neighbours", broken_lookup)
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=90)
    app.session_state["reviewer_name"] = "ada"
    app.run()
    with caplog.at_level(logging.ERROR):
        app.switch_page("pages/review.py").run()
    assert not app.exception, [e.value for e in app.exception]
    assert any(h.value.startswith("Sample ") for h in app.subheader)
    assert [e.value for e in app.error] == [
        "Nearest neighbours could not be loaded: RuntimeError: the embedding cache is corrupt"
    ]
    assert any(
        "nearest neighbours of sample" in r.getMessage() and "corrupt" in (r.exc_text or str(r.exc_info))
        for r in caplog.records
    )
