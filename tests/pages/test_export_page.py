"""The export page under AppTest: live plan preview, run as a job, result with download; reconciliation."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from curation.config import PROJECT_ROOT
from curation.jobs import wait_for_job
from curation.store import open_store
from tests.helpers import add_batch, real_rows, synthetic_rows

APP = str(PROJECT_ROOT / "app.py")


@pytest.fixture
def workspace(monkeypatch, make_store_url):
    url = make_store_url("sqlite")
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    engine = open_store(url)
    add_batch(
        engine,
        "syn",
        synthetic_rows(30) + synthetic_rows(4, tag="x", decision="reject"),
        stats={"cost": 0.9, "prompt_tokens": 10, "completion_tokens": 20},
    )
    add_batch(engine, "human", real_rows(10), origin="real")
    return engine


def open_page(**state) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    for key, value in state.items():
        app.session_state[key] = value
    app.run()
    app.switch_page("pages/export.py").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


@pytest.mark.parametrize("fmt", ["parquet", "hf"])
def test_preview_run_and_download(workspace, tmp_path, fmt):
    app = open_page(reviewer_name="ada")
    assert metrics(app) == {"Rows": "40", "Synthetic": "30", "Real": "10", "Synthetic share": "75.0%"}
    app.number_input(key="export_share").set_value(50.0).run()
    assert metrics(app)["Synthetic"] == "10" and metrics(app)["Synthetic share"] == "50.0%"
    assert not app.error
    app.number_input(key="export_share").set_value(95.0).run()
    assert any("needs 190 synthetic rows" in e.value for e in app.error)
    assert app.button[0].disabled
    app.checkbox(key="export_allow_drop").check().run()
    assert not app.error and metrics(app)["Real"] == "2"
    app.checkbox(key="export_allow_drop").uncheck()
    app.number_input(key="export_share").set_value(50.0)
    app.number_input(key="export_validation").set_value(0.2)
    app.selectbox(key="export_format").set_value(fmt)
    app.text_input(key="export_out").set_value(str(tmp_path / "out")).run()
    assert not app.button[0].disabled
    app.button[0].click().run()
    job_id = app.session_state["export_job"]
    assert wait_for_job(workspace, job_id).state == "succeeded"
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("Wrote 20 rows to" in s.value for s in app.success)
    assert "Ran on local worker processes" in [c.value for c in app.caption]
    downloads = app.get("download_button")
    assert len(downloads) == 1 and "out.zip" in downloads[0].proto.label
    assert (tmp_path / "out.zip").is_file()
    assert any(e.label == "Dataset card (README.md)" for e in app.expander)


def test_single_file_download_and_reconciliation_tables(workspace, tmp_path):
    app = open_page(reviewer_name="ada")
    app.text_input(key="export_out").set_value(str(tmp_path / "o")).run()
    app.button[0].click().run()
    assert wait_for_job(workspace, app.session_state["export_job"]).state == "succeeded"
    app.run()
    assert [d.proto.label for d in app.get("download_button")] == ["Download data.jsonl"]
    tables = [t.value for t in app.dataframe]
    reconciliation = next(t for t in tables if "requested" in t.columns)
    row = reconciliation.set_index("batch").loc["syn"]
    assert (row["generated"], row["reviewed"], row["exported"]) == (34, 30, 30)
    assert row["→ reviewed: why fewer"] == "4 rejected"
    cost = next(t for t in tables if "cost_per_accepted" in t.columns)
    assert cost["cost_per_accepted"].iloc[0] == pytest.approx(0.03)
    assert not app.error
