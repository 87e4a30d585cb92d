"""The Verify page under streamlit.testing.v1.AppTest, against a real store."""

from __future__ import annotations

import os
import socket

import pytest
from sqlalchemy import select, update
from streamlit.testing.v1 import AppTest

from curation.io.importer import import_file
from curation.jobs import get_job, submit_job, wait_for_job
from curation.jobs.liveness import process_start_token
from curation.sandbox import resolve_mode
from curation.store import open_store
from curation.store.db import session_scope
from curation.store.models import Job, Sample, Verdict, utcnow
from curation.verification.runner import run_verification
from tests.helpers import ADMIN, run_app_page, sample_records, write_jsonl

PAGE = "pages/verify.py"
SANDBOX = resolve_mode()[0] is not None


def records() -> list[dict]:
    rows = sample_records(8)
    rows[1]["response"] = "1 + 2 = 4, so the final answer is \\boxed{4}."
    rows.append(
        {
            "id": "i1",
            "family": "instruction",
            "prompt": "Describe the sea without commas.",
            "response": "The sea is wide, blue, and calm.",
            "reference": {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        }
    )
    if SANDBOX:
        rows.append(
            {
                "id": "c1",
                "family": "code",
                "prompt": 'def add(a, b):\n    """Return a + b."""\n',
                "response": "```python\ndef add(a, b):\n    print('<b>hi</b>')\n    return a - b\n```",
                "reference": {"tests": "assert add(1, 2) == 3\nassert add(0, 0) == 0"},
            }
        )
    return rows


@pytest.fixture
def workspace(monkeypatch, make_store_url, tmp_path):
    url = make_store_url("sqlite")
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    monkeypatch.delenv("ASSAY_JUDGE_BASE_URL", raising=False)
    engine = open_store(url)
    import_file(engine, ADMIN, write_jsonl(tmp_path / "b.jsonl", records()), "batch <one>")
    return engine


def ids(engine) -> dict[str, int]:
    with session_scope(engine, write=False) as session:
        return dict(session.execute(select(Sample.external_id, Sample.id)).all())


def table_with(app: AppTest, column: str):
    """The first dataframe on the page with this column (display tables carry no key)."""
    return next(frame.value for frame in app.dataframe if column in frame.value.columns)


def open_page(**state) -> AppTest:
    state.setdefault("reviewer_name", "ada")  # the acting user (an admin: the suite runs with ASSAY_AUTH=none)
    return run_app_page(PAGE, timeout=120, **state)


def test_start_verification_from_the_page(workspace):
    app = open_page()
    assert app.title[0].value == "Verify"
    assert "No verdicts in these batches yet." in [c.value for c in app.caption]
    assert app.button(key="verify_start").disabled
    app.multiselect(key="verify_batches").select("batch <one>").run()
    app.number_input(key="verify_jobs").set_value(1).run()
    app.button(key="verify_start").click().run()
    assert not app.exception, [e.value for e in app.exception]
    job_id = app.session_state["verify_job"]
    job = wait_for_job(workspace, job_id, timeout=300)
    assert job.state == "succeeded", job.error
    assert job.result["samples"] == len(records())

    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert "Ran on local worker processes" in [c.value for c in app.caption]
    assert len(app.get("plotly_chart")) == 2, "pass rates and failure reasons"
    table = app.dataframe(key="verify_table").value
    assert len(table) == len(records())
    assert table.set_index("id").loc[ids(workspace)["r1"], "outcome"] == "fail"

    app.multiselect(key="verify_filter_outcome").select("failed").run()
    failed = app.dataframe(key="verify_table").value
    assert set(failed["id"]) == {ids(workspace)[k] for k in ("r1", "i1", "c1") if k in ids(workspace)}


def test_sample_detail_shows_each_verifier(workspace):
    run_verification(workspace, {"batches": ["batch <one>"], "jobs": 1})
    sample = ids(workspace)
    app = open_page(verify_sample=sample["r1"])
    facts = table_with(app, "value")
    values = dict(zip(facts[""], facts["value"], strict=True))
    assert (values["extracted answer"], values["reference answer"]) == ("4", "3")

    app = open_page(verify_sample=sample["i1"])
    parts = table_with(app, "constraint")
    assert parts.iloc[0][["constraint", "strict", "loose"]].tolist() == [
        "punctuation:no_comma",
        "fail",
        "fail",
    ]

    if SANDBOX:
        app = open_page(verify_sample=sample["c1"])
        tests = table_with(app, "test")
        assert tests["outcome"].tolist() == ["fail", "pass"], "a - b is right for add(0, 0)"
        assert any("<b>hi</b>" in code.value for code in app.code), "stdout shown as text"
        assert not any("<b>hi</b>" in m.value for m in app.markdown)


def test_verdict_changes_between_versions(workspace):
    sample = ids(workspace)
    maths = [sid for key, sid in sample.items() if key.startswith("r")]
    with session_scope(workspace) as session:
        session.add_all(
            Verdict(
                sample_id=sid,
                verifier="math_answer",
                version="0",
                passed=sid != sample["r2"],
                reason="old rule",
            )
            for sid in maths
        )
    run_verification(workspace, {"batches": ["batch <one>"], "verifiers": ["math_answer"], "jobs": 1})
    app = open_page()
    assert app.selectbox(key="flip_verifier").value == "math_answer"
    flips = table_with(app, "change")
    changes = dict(zip(flips["id"], flips["change"], strict=True))
    assert changes == {sample["r1"]: "pass → fail", sample["r2"]: "fail → pass"}


def test_a_job_on_ray_shows_the_cluster(workspace):
    ray_record = {
        "executor": "ray",
        "ray_address": "10.0.0.5:6379",
        "cluster": {"nodes": 2, "cpus": 32, "gpus": 1, "per_node": []},
    }
    job_id = submit_job(workspace, ADMIN, "verify", {"batches": ["batch <one>"]})
    with session_scope(workspace) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state="succeeded", result={"samples": 0}, counters={"executor": ray_record})
        )
    app = open_page(verify_job=job_id)
    assert "Ran on Ray at 10.0.0.5:6379: 2 nodes, 32 CPUs, 1 GPUs" in [c.value for c in app.caption]


@pytest.mark.parametrize("holder_alive", [True, False])
def test_the_start_button_goes_ahead_past_a_dead_job_and_names_a_live_one(workspace, holder_alive):
    """Issue 15 from the page: the holder of the batch appears after the page opened (so
    nothing but the button's start can reap it). A dead holder is marked failed and the
    start goes ahead; a live one refuses the start, naming its pid, host, last heartbeat
    and the cancel command, and no job row is added."""
    app = open_page()
    app.multiselect(key="verify_batches").select("batch <one>").run()
    app.number_input(key="verify_jobs").set_value(1).run()
    holder = submit_job(workspace, ADMIN, "verify", {"batches": ["batch <one>"]})
    pid = os.getpid() if holder_alive else 2**22 + 1
    with session_scope(workspace) as session:
        session.execute(
            update(Job)
            .where(Job.id == holder)
            .values(
                state="running",
                pid=pid,
                pid_start=process_start_token(os.getpid()),
                host=socket.gethostname(),
                heartbeat_at=utcnow(),
            )
        )

    app.button(key="verify_start").click().run()

    assert not app.exception, [e.value for e in app.exception]
    if holder_alive:
        [error] = [e.value for e in app.error]
        assert error.startswith(
            f"batch 'batch <one>' is being verified by job {holder} (pid {pid} on host {socket.gethostname()}, "
            "last heartbeat "
        )
        assert f"`python -m curation cancel {holder}`" in error
        assert "verify_job" not in app.session_state
        with session_scope(workspace, write=False) as session:
            assert session.scalars(select(Job.id)).all() == [holder]
        return
    assert not app.error
    started = app.session_state["verify_job"]
    assert started == holder + 1
    assert (
        get_job(workspace, holder).error
        == f"worker process {pid} exited without finishing (killed or crashed)"
    )
    assert wait_for_job(workspace, started, timeout=300).state == "succeeded"
