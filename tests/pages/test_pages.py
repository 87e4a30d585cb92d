"""Every page under streamlit.testing.v1.AppTest, against a real store."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from curation.config import PROJECT_ROOT
from curation.io.importer import import_file
from curation.jobs import start_job, wait_for_job
from curation.review.decisions import record_decision
from curation.store import open_store
from curation.store.queries import SampleFilter, get_sample, query_samples
from tests.helpers import write_jsonl

APP = str(PROJECT_ROOT / "app.py")


@pytest.fixture
def workspace(monkeypatch, make_store_url, records_file):
    """A SQLite workspace with one batch, selected through ASSAY_DATABASE_URL."""
    url = make_store_url("sqlite")
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    engine = open_store(url)
    import_file(engine, records_file(12), "batch one")
    return engine


@pytest.fixture
def make_app(workspace):
    """Factory: the app, switched to `page`, with optional session state, after one run."""

    def factory(page: str, **state) -> AppTest:
        app = AppTest.from_file(APP, default_timeout=60)
        for key, value in state.items():
            app.session_state[key] = value
        app.run()
        app.switch_page(page).run()
        assert not app.exception, [e.value for e in app.exception]
        return app

    return factory


def test_overview_lists_batches(make_app):
    app = make_app("pages/home.py")
    assert app.title[0].value == "Assay"
    assert any(metric.value == "12" for metric in app.metric)


def test_samples_page_records_a_decision(make_app, workspace):
    rows, _ = query_samples(workspace, SampleFilter())
    app = make_app("pages/samples.py", reviewer_name="ada", open_sample=rows[0].id)
    assert f"Sample {rows[0].id}" in [h.value for h in app.subheader]
    app.button(key="accept").click().run()
    assert not app.exception
    assert get_sample(workspace, rows[0].id).decision == "accept"
    app.button(key="undo").click().run()
    assert get_sample(workspace, rows[0].id).decision is None


def test_samples_page_requires_a_reviewer_name(make_app, workspace):
    rows, _ = query_samples(workspace, SampleFilter())
    app = make_app("pages/samples.py", open_sample=rows[0].id)
    assert app.button(key="accept").disabled
    assert any("reviewer name" in info.value for info in app.info)


def test_samples_page_filters_and_searches(make_app):
    app = make_app("pages/samples.py")
    app.text_input(key="filter_search").input("3 + 4").run()
    assert "1 samples" in app.caption[-2].value or any("1 samples" in c.value for c in app.caption)


def test_import_page_shows_a_failed_import_with_line_and_field(make_app, workspace, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"family": "math", "prompt": "p", "response": "r"}, {"family": "math", "prompt": 3, "response": ""}])
    job_id = start_job(workspace, "import", {"path": str(path), "batch": "bad"})
    wait_for_job(workspace, job_id)
    app = make_app("pages/import_data.py", import_job=job_id)
    assert [error.value for error in app.error] == ["bad.jsonl: line 2, field 'prompt': expected a string, got int"]


def test_export_page_exports_accepted_samples(make_app, workspace, tmp_path):
    rows, _ = query_samples(workspace, SampleFilter())
    record_decision(workspace, rows[0].id, "ada", "accept")
    app = make_app("pages/export.py", reviewer_name="ada")
    app.text_input[0].set_value(str(tmp_path / "out"))
    app.button[0].click().run()
    assert not app.exception
    job_id = app.session_state["export_job"]
    assert wait_for_job(workspace, job_id).state == "succeeded"
    assert (tmp_path / "out" / "data.jsonl").read_text().count("\n") == 1


def test_jobs_page_lists_jobs(make_app, workspace, records_file):
    wait_for_job(workspace, start_job(workspace, "import", {"path": str(records_file(3, name="x.jsonl")), "batch": "x"}))
    app = make_app("pages/jobs.py")
    assert len(app.dataframe) == 1
    assert app.dataframe[0].value["state"].tolist() == ["succeeded"]
