"""`python -m curation generate` and `teacher-models`."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from curation.cli import main
from curation.store import open_store, session_scope
from curation.store.models import Batch, Job, Sample
from curation.testing.openai_server import OpenAICompatServer

KEY = "sk-cli-test-1122334455667788"


@pytest.fixture
def db(make_store_url) -> str:
    return make_store_url("sqlite")


def test_generate_with_the_simulated_teacher_then_resume(db, capsys):
    assert main(["--db", db, "generate", "--batch", "cli", "--source", "humaneval:5", "--n", "2"]) == 0
    assert "'cli' (id 1): 10/10 ok, 0 failed" in capsys.readouterr().out
    assert main(["--db", db, "generate", "--batch", "cli", "--source", "humaneval:5", "--n", "2"]) == 1
    assert "already exists; pass --resume" in capsys.readouterr().err
    assert (
        main(["--db", db, "generate", "--batch", "cli", "--source", "humaneval:5", "--n", "2", "--resume"])
        == 0
    )
    assert "10/10 ok, 0 failed, 0 cached, 0 requests" in capsys.readouterr().out
    other = ["generate", "--batch", "cli", "--source", "humaneval:5", "--n", "3", "--resume"]
    assert main(["--db", db, *other]) == 1
    assert "'cli' exists with a different generation configuration" in capsys.readouterr().err
    engine = open_store(db)
    with session_scope(engine, write=False) as session:
        assert session.scalar(select(func.count()).select_from(Sample)) == 10
        assert session.scalar(select(Batch.family)) == "code"
        # the refused resume (other settings) left no job behind
        assert [j.state for j in session.scalars(select(Job))] == ["succeeded", "succeeded"]


def test_generate_against_an_endpoint_and_list_its_models(db, capsys, monkeypatch):
    monkeypatch.setenv("CLI_TEACHER_KEY", KEY)
    with OpenAICompatServer(api_key=KEY, models=("alpha", "beta")) as server:
        assert (
            main(["teacher-models", "--base-url", server.base_url, "--api-key-env", "CLI_TEACHER_KEY"]) == 0
        )
        assert capsys.readouterr().out.split() == ["alpha", "beta"]
        args = [
            "--db",
            db,
            "generate",
            "--batch",
            "e",
            "--source",
            "reasoning_gym:basic_arithmetic:12",
            "--teacher",
            "openai",
            "--base-url",
            server.base_url,
            "--model",
            "beta",
            "--api-key-env",
            "CLI_TEACHER_KEY",
            "--concurrency",
            "4",
            "--price-prompt",
            "1",
        ]
        assert main(args) == 0
        assert "12/12 ok" in capsys.readouterr().out
        assert server.stats.completions_ok == 12
        monkeypatch.setenv("CLI_TEACHER_KEY", "sk-not-the-right-one-000")
        assert (
            main(["teacher-models", "--base-url", server.base_url, "--api-key-env", "CLI_TEACHER_KEY"]) == 1
        )
        err = capsys.readouterr().err
        assert "auth (401)" in err and "sk-not-the-right-one-000" not in err


def test_generate_spreads_over_the_processes_asked_for(db, capsys, monkeypatch):
    monkeypatch.setenv("CLI_TEACHER_KEY", KEY)
    with OpenAICompatServer(api_key=KEY, models=("beta",), latency=0.05) as server:
        args = [
            "--db",
            db,
            "generate",
            "--batch",
            "p",
            "--source",
            "reasoning_gym:basic_arithmetic:80",
            "--teacher",
            "openai",
            "--base-url",
            server.base_url,
            "--model",
            "beta",
            "--api-key-env",
            "CLI_TEACHER_KEY",
            "--concurrency",
            "4",
            "--processes",
            "2",
        ]
        assert main(args) == 0
        assert "80/80 ok" in capsys.readouterr().out
        assert server.stats.completions_ok == 80
    with session_scope(open_store(db), write=False) as session:
        run = session.scalar(select(Batch).where(Batch.name == "p")).stats["runs"][-1]
    assert run["shards"] == 2 and sum(run["requests_by_process"]) == 80


def test_generate_reports_bad_arguments(db, capsys):
    assert main(["--db", db, "generate", "--batch", "x", "--source", "topics:3"]) == 1
    assert "give --family for a topics source" in capsys.readouterr().err
    assert (
        main(["--db", db, "generate", "--batch", "x", "--source", "humaneval:3", "--teacher", "openai"]) == 1
    )
    assert "needs --base-url and --model" in capsys.readouterr().err
