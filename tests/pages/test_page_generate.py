"""The Generate page under streamlit.testing.v1.AppTest, against a real store and,
for the endpoint, the real local HTTP server."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from curation.jobs import get_job, wait_for_job
from curation.store import open_store, session_scope
from curation.store.models import Batch
from curation.testing.openai_server import OpenAICompatServer
from tests.helpers import ADMIN, run_app_page

PAGE = "pages/generate.py"
KEY = "sk-page-test-a1b2c3d4e5f60718"


@pytest.fixture
def workspace(monkeypatch, make_store_url):
    url = make_store_url("sqlite")
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    return open_store(url)


def run_page(**state) -> AppTest:
    """The Generate page through the router (a page runs only as app.py routes it)."""
    state.setdefault("reviewer_name", "ada")  # the acting user (an admin: the suite runs with ASSAY_AUTH=none)
    return run_app_page(PAGE, timeout=60, **state)


def metric(app: AppTest, label: str) -> str:
    return next(m.value for m in app.metric if m.label == label)


def test_simulated_run_from_the_page(workspace):
    app = run_page()
    assert any(info.value.startswith("The simulated teacher is not a model") for info in app.info)
    assert any(
        code.value.startswith("Solve the following problem") and "Calculate" in code.value
        for code in app.code
    )
    app.number_input(key="gen_rg_size").set_value(12).run()
    app.button(key="gen_start").click().run()
    assert not app.exception
    job_id = app.session_state["generate_job"]
    assert wait_for_job(workspace, job_id, timeout=120).state == "succeeded"
    app.run()
    assert metric(app, "Done") == "12" and metric(app, "Failed") == "0"
    assert any("is ready: 12 samples" in s.value for s in app.success)
    with session_scope(workspace, write=False) as session:
        batch = session.scalar(select(Batch))
    assert batch.source.startswith("simulated") and batch.generation_config["teacher"] == "simulated"


def test_unknown_template_variable_is_named_and_blocks_the_start(workspace):
    app = run_page()
    app.text_area(key="gen_tpl_user_math_solve").input("Solve {problm} now").run()
    assert any("unknown variable {problm}" in e.value for e in app.error)
    assert app.button(key="gen_start").disabled


def test_write_mode_preview_and_levers(workspace):
    app = run_page()
    app.selectbox(key="gen_family").set_value("Code").run()
    app.radio(key="gen_mode").set_value("Teacher writes the problem too").run()
    app.text_area(key="gen_topics").input("binary trees").run()
    assert any("about binary trees" in code.value for code in app.code)
    assert not app.button(key="gen_start").disabled


def test_endpoint_connection_and_a_key_kept_out_of_the_job(workspace):
    with OpenAICompatServer(api_key=KEY, models=("m1", "m2")) as server:
        app = run_page()
        app.radio(key="gen_teacher").set_value("OpenAI-compatible endpoint").run()
        app.text_input(key="gen_base_url").input(server.base_url).run()
        app.text_input(key="gen_model").input("m2").run()
        app.radio(key="gen_key_source").set_value("Enter a key for this session").run()
        app.text_input(key="gen_session_key").input(KEY).run()
        app.number_input(key="gen_rg_size").set_value(8).run()
        app.button(key="gen_test_connection").click().run()
        assert any("2 model(s)" in s.value for s in app.success)
        app.button(key="gen_start").click().run()
        job_id = app.session_state["generate_job"]
        job = wait_for_job(workspace, job_id, timeout=120)
        assert job.state == "succeeded", job.error
        assert server.stats.completions_ok == 8
    params = get_job(workspace, job_id).params
    assert KEY not in repr(params)
    assert params["teacher"]["api_key_env"].startswith("ASSAY_TEACHER_KEY_")
    assert params["teacher"]["api_key_env"] not in os.environ


def test_a_stopped_run_shows_why_and_resumes_with_the_key_typed_again(workspace):
    from curation.generation.launch import start_generation

    with OpenAICompatServer(api_key=KEY) as server:
        params = {
            "batch": "endpoint",
            "family": "math",
            "source": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": 30}},
            "teacher": {
                "kind": "openai",
                "base_url": server.base_url,
                "model": "test-model",
                "concurrency": 4,
            },
        }
        failed = start_generation(workspace, ADMIN, params, api_key="sk-typo-000000000000")
        assert wait_for_job(workspace, failed, timeout=120).state == "failed"
        app = run_page(gen_pending_job=failed)
        assert any("rejected the API key" in e.value for e in app.error)
        assert not any("sk-typo-000000000000" in e.value for e in app.error)
        app.text_input(key=f"gen_resume_key_{failed}").input(KEY).run()
        app.button(key=f"gen_resume_{failed}").click().run()
        resumed = app.session_state["generate_job"]
        assert resumed != failed
        job = wait_for_job(workspace, resumed, timeout=120)
        assert job.state == "succeeded", job.error
        assert job.result["ok"] == 30


def test_batch_api_spend_cap_and_cost_estimate_from_the_page(workspace, monkeypatch):
    monkeypatch.setenv("ASSAY_PAGE_BATCH_KEY", KEY)
    with OpenAICompatServer(api_key=KEY, batch_expire_rate=0.2) as server:
        app = run_page()
        app.radio(key="gen_teacher").set_value("OpenAI-compatible endpoint").run()
        app.text_input(key="gen_base_url").input(server.base_url).run()
        app.text_input(key="gen_model").input("test-model").run()
        app.text_input(key="gen_key_env").input("ASSAY_PAGE_BATCH_KEY").run()
        app.number_input(key="gen_rg_size").set_value(8).run()
        app.number_input(key="gen_price_batch_in").set_value(1.0).run()
        app.checkbox(key="gen_batch_api").check().run()
        app.number_input(key="gen_max_cost").set_value(50.0).run()
        assert any(c.value.startswith("Estimate: 8 requests for 8 answers") for c in app.caption)
        assert any("at batch prices" in c.value for c in app.caption)
        app.button(key="gen_start").click().run()
        job_id = app.session_state["generate_job"]
        job = wait_for_job(workspace, job_id, timeout=120)
        assert job.state == "succeeded", job.error
        assert sum(server.batch.ledger.paid.values()) == 8
    params = get_job(workspace, job_id).params
    assert params["batch_api"] is True and params["max_cost"] == 50.0
    assert params["prices"]["batch_prompt_per_million"] == 1.0
    app = run_page(gen_pending_job=job_id)
    assert any(c.value.startswith("Batch API: ") for c in app.caption)


def test_a_conversation_batch_from_the_page(workspace):
    app = run_page()
    assert not [n for n in app.number_input if n.key == "gen_turns"]  # math: single turn
    app.selectbox(key="gen_family").set_value("Open-ended").run()
    app.number_input(key="gen_count_open_prompts").set_value(2).run()
    app.number_input(key="gen_turns").set_value(3).run()
    app.button(key="gen_start").click().run()
    assert not app.exception
    job = wait_for_job(workspace, app.session_state["generate_job"], timeout=120)
    assert job.state == "succeeded" and get_job(workspace, job.id).params["turns"] == 3
