"""Every page under streamlit.testing.v1.AppTest, against a real store."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from curation.auth import ALLOWED, Action, Actor, Role
from curation.config import PROJECT_ROOT
from curation.io.importer import import_file
from curation.jobs import start_job, wait_for_job
from curation.review.decisions import record_decision
from curation.store import open_store
from curation.store.queries import SampleFilter, get_sample, query_samples
from pages import FOLDER, PAGES
from tests.helpers import ADMIN, as_user, run_app_page, signed_in, write_jsonl


@pytest.fixture
def workspace(monkeypatch, make_store_url, records_file):
    """A SQLite workspace with one batch, selected through ASSAY_DATABASE_URL."""
    url = make_store_url("sqlite")
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    engine = open_store(url)
    import_file(engine, ADMIN, records_file(12), "batch one")
    return engine


@pytest.fixture
def make_app(workspace):
    """Factory: the app, switched to `page`, with optional session state, after one run."""

    def factory(page: str, **state) -> AppTest:
        return run_app_page(page, timeout=60, **state)

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
    assert any("enter your name in the sidebar" in info.value for info in app.info)


@pytest.mark.auth
@pytest.mark.parametrize(
    ("page", "keys", "action"),
    [
        ("pages/samples.py", ["accept", "reject", "skip", "undo"], Action.DECIDE),
        ("pages/import_data.py", [], Action.IMPORT),
    ],
)
@pytest.mark.parametrize("role", [Role.VIEWER, Role.REVIEWER, Role.ADMIN])
def test_pages_disable_what_the_signed_in_role_may_not_do_and_say_why(make_app, workspace, page, keys, action, role):
    rows, _ = query_samples(workspace, SampleFilter())
    app = make_app(page, open_sample=rows[0].id, **signed_in(Actor("someone", role)))
    allowed = action in ALLOWED[role]
    for key in keys:
        assert app.button(key=key).disabled is not allowed
    reason = f"Your role ({role.value}) may not {action.value}; ask an admin."
    shown = [info.value for info in app.info] + [button.help for button in app.button]
    assert (reason in shown) is not allowed


def test_samples_page_filters_and_searches(make_app):
    app = make_app("pages/samples.py")
    app.text_input(key="filter_search").input("3 + 4").run()
    assert "1 samples" in app.caption[-2].value or any("1 samples" in c.value for c in app.caption)


def test_import_page_shows_a_failed_import_with_line_and_field(make_app, workspace, tmp_path):
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [{"family": "math", "prompt": "p", "response": "r"}, {"family": "math", "prompt": 3, "response": ""}],
    )
    job_id = start_job(workspace, ADMIN, "import", {"path": str(path), "batch": "bad"})
    wait_for_job(workspace, job_id)
    app = make_app("pages/import_data.py", import_job=job_id)
    assert [error.value for error in app.error] == [
        "bad.jsonl: line 2, field 'prompt': expected a string, got int"
    ]


def test_export_page_exports_accepted_samples(make_app, workspace, tmp_path):
    rows, _ = query_samples(workspace, SampleFilter())
    record_decision(workspace, as_user("ada"), rows[0].id, "accept")
    app = make_app("pages/export.py", reviewer_name="ada")
    app.text_input[0].set_value(str(tmp_path / "out"))
    app.button[0].click().run()
    assert not app.exception
    job_id = app.session_state["export_job"]
    assert wait_for_job(workspace, job_id).state == "succeeded"
    assert (tmp_path / "out" / "data.jsonl").read_text().count("\n") == 1


def test_jobs_page_lists_jobs(make_app, workspace, records_file):
    wait_for_job(
        workspace,
        start_job(workspace, ADMIN, "import", {"path": str(records_file(3, name="x.jsonl")), "batch": "x"}),
    )
    app = make_app("pages/jobs.py")
    assert len(app.dataframe) == 1
    assert app.dataframe[0].value["state"].tolist() == ["succeeded"]


def test_every_page_script_is_listed_once():
    """`PAGES` is the one list app.py routes by: every script in pages/ is in it once."""
    assert FOLDER == PROJECT_ROOT / "pages"
    scripts = sorted(p.name for p in FOLDER.glob("*.py") if p.name not in ("__init__.py", "common.py"))
    assert sorted(entry.script for entry in PAGES) == scripts
    url_paths = [entry.url_path for entry in PAGES if not entry.default]
    assert len(set(url_paths)) == len(url_paths) == len(PAGES) - 1


def test_the_app_uses_only_public_streamlit_modules():
    """The hand-over from Streamlit's old `pages/` mode uses public calls: app.py and the
    pages import `streamlit` itself, never its private submodules (streamlit.runtime…)."""
    private = []
    for path in [PROJECT_ROOT / "app.py", *sorted(FOLDER.glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            private += [f"{path.name}: {name}" for name in names if name.startswith("streamlit.")]
    assert private == []


def test_importing_the_page_helpers_leaves_streamlit_routing_alone():
    """The shared helpers used to switch Streamlit's private legacy-pages flag off at import."""
    probe = (
        "from streamlit.runtime.pages_manager import PagesManager\n"
        "PagesManager.uses_pages_directory = True\n"
        "import pages.common\n"
        "print(PagesManager.uses_pages_directory)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("entry", PAGES, ids=lambda entry: entry.title)
def test_every_page_opens_through_the_router_with_the_sidebar(make_app, entry):
    app = make_app(entry.path)
    assert any(box.label == "Reviewer name" for box in app.sidebar.text_input)
