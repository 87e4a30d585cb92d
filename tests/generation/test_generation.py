"""Generation against a real OpenAI-compatible HTTP server: exact counts under
injected faults, fail-fast, cache, truncation, secrets, kill-and-resume."""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

import pytest
from sqlalchemy import func, select, text

from curation.generation.engine import GenerationStopped
from curation.generation.run import run_generation
from curation.jobs import get_job, resume_job, start_job, wait_for_job
from curation.store import session_scope
from curation.store.models import Base, Batch, GenerationRequest, Job, ResponseCache, Sample
from curation.testing.openai_server import OpenAICompatServer
from tests.helpers import ADMIN

KEY = "sk-test-4f9c2a7e51b8d3c6a0e9f1b2"
KEY_ENV = "ASSAY_TEST_TEACHER_KEY"


@pytest.fixture
def server():
    with OpenAICompatServer(api_key=KEY, hang_seconds=5.0, retry_after=0.05) as running:
        yield running


def params(
    server: OpenAICompatServer, *, batch: str = "b", count: int = 50, **overrides: Any
) -> dict[str, Any]:
    teacher = {
        "kind": "openai",
        "base_url": server.base_url,
        "model": "test-model",
        "api_key_env": KEY_ENV,
        "timeout": 2.0,
        "concurrency": 16,
        "max_retries": 8,
        **overrides.pop("teacher", {}),
    }
    return {
        "batch": batch,
        "family": "math",
        "source": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": count}},
        "teacher": teacher,
        **overrides,
    }


def counts(engine, batch: str = "b") -> dict[str, int]:
    with session_scope(engine, write=False) as session:
        batch_id = session.scalar(select(Batch.id).where(Batch.name == batch))
        samples = session.scalar(select(func.count()).select_from(Sample).where(Sample.batch_id == batch_id))
        slots = session.execute(
            select(func.count(func.distinct(Sample.item_index * 1000 + Sample.candidate_index))).where(
                Sample.batch_id == batch_id
            )
        ).scalar()
        by_status = dict(
            session.execute(
                select(GenerationRequest.status, func.count())
                .where(GenerationRequest.batch_id == batch_id)
                .group_by(GenerationRequest.status)
            ).all()
        )
    return {"samples": samples, "distinct_slots": slots, **by_status}


def batch_row(engine, name: str = "b") -> Batch:
    with session_scope(engine, write=False) as session:
        return session.scalar(select(Batch).where(Batch.name == name))


def test_thousand_requests_complete_with_exact_counts_under_faults(engine, server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    faults = {
        "rate_limit": 0.02,
        "server_error": 0.05,
        "hang": 0.01,
        "malformed": 0.03,
        "truncated": 0.03,
        "drop": 0.03,
    }
    server.configure(faults=faults, latency=0.005)
    result = run_generation(
        engine, params(server, count=1000, teacher={"timeout": 1.5, "concurrency": 32}), tick_seconds=0.2
    )
    assert result["status"] == "ready"
    assert counts(engine) == {"samples": 1000, "distinct_slots": 1000, "ok": 1000}
    outcomes = server.stats.outcomes
    for kind in ("rate_limit", "server_error", "hang", "malformed", "drop"):
        assert outcomes[kind] > 0, kind
    # Every slot was answered exactly once. The server may have completed a few more:
    # only requests the client gave up on (timeouts beyond the injected hangs) can be
    # answered twice, and none of those answers reached the store.
    late = result["run"]["errors_by_kind"].get("timeout", 0) - outcomes["hang"]
    assert 1000 <= server.stats.completions_ok <= 1000 + late
    assert outcomes["ok"] + outcomes["truncated"] == server.stats.completions_ok
    assert result["requests"] == server.stats.chat_requests
    stats = batch_row(engine).stats
    assert stats["truncated"] <= outcomes["truncated"] <= stats["truncated"] + late
    assert stats["ok"] == 1000 and stats["failed"] == 0
    assert stats["latency_ms"]["p50"] is not None
    assert stats["runs"][-1]["errors_by_kind"]["rate_limit"] == outcomes["rate_limit"]


@pytest.mark.parametrize("case", ["wrong_key", "unknown_model"])
def test_wrong_key_or_model_stops_the_batch_fast_with_a_reason(sqlite_engine, server, monkeypatch, case):
    wrong = "sk-wrong-9d8c7b6a5f4e3d2c1b0a"
    monkeypatch.setenv(KEY_ENV, wrong if case == "wrong_key" else KEY)
    overrides = {"model": "no-such-model"} if case == "unknown_model" else {}
    with pytest.raises(GenerationStopped) as raised:
        run_generation(sqlite_engine, params(server, count=2000, teacher=overrides))
    reason = str(raised.value)
    expected = "API key" if case == "wrong_key" else "model name 'no-such-model'"
    assert expected in reason
    assert wrong not in reason and KEY not in reason
    assert server.stats.chat_requests <= 2 * 16 + 10
    batch = batch_row(sqlite_engine)
    assert batch.status == "failed"
    assert batch.stats["stop_reason"] == reason


@pytest.mark.parametrize("cache", [True, False])
def test_rerunning_a_configuration_is_served_from_the_cache(sqlite_engine, server, monkeypatch, cache):
    monkeypatch.setenv(KEY_ENV, KEY)
    run_generation(sqlite_engine, params(server, count=40, n=2, cache=cache))
    first = server.stats.chat_requests
    assert first == 40
    result = run_generation(sqlite_engine, params(server, batch="again", count=40, n=2, cache=cache))
    assert counts(sqlite_engine, "again") == {"samples": 80, "distinct_slots": 80, "ok": 80}
    if cache:
        assert server.stats.chat_requests == first
        assert result["cached"] == 80 and result["cost"] == 0.0
        with session_scope(sqlite_engine, write=False) as session:
            responses = {
                name: sorted(session.scalars(select(Sample.response).join(Batch).where(Batch.name == name)))
                for name in ("b", "again")
            }
        assert responses["b"] == responses["again"]
    else:
        assert server.stats.chat_requests == 2 * first
        assert result["cached"] == 0
        with session_scope(sqlite_engine, write=False) as session:
            assert session.scalar(select(func.count()).select_from(ResponseCache)) == 0


def test_rerun_of_a_finished_batch_requests_nothing_and_a_changed_config_is_refused(
    sqlite_engine, server, monkeypatch
):
    monkeypatch.setenv(KEY_ENV, KEY)
    run_generation(sqlite_engine, params(server, count=20, cache=False))
    assert server.stats.chat_requests == 20
    again = run_generation(sqlite_engine, params(server, count=20, cache=False))
    assert again["requests"] == 0 and server.stats.chat_requests == 20
    with pytest.raises(ValueError, match="different generation configuration"):
        run_generation(sqlite_engine, params(server, count=21))


def test_truncated_responses_are_kept_and_flagged(sqlite_engine, server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    run_generation(sqlite_engine, params(server, count=30, teacher={"max_tokens": 4}))
    with session_scope(sqlite_engine, write=False) as session:
        rows = session.execute(select(Sample.response, Sample.meta)).all()
        finish = set(session.scalars(select(GenerationRequest.finish_reason)))
    assert len(rows) == 30
    for response, meta in rows:
        assert meta["truncated"] is True and meta["finish_reason"] == "length"
        assert len(response.split()) == 4
    assert finish == {"length"}
    assert batch_row(sqlite_engine).stats["truncated"] == 30


def _dump_text(engine) -> str:
    chunks = []
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                chunks.append(repr(tuple(row)))
        if engine.dialect.name == "sqlite":
            chunks += [repr(r) for r in connection.execute(text("SELECT * FROM alembic_version"))]
    return "\n".join(chunks)


def test_the_api_key_is_never_stored_logged_or_reported(sqlite_engine, server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    server.configure(faults={"server_error": 0.1, "drop": 0.05})
    run_generation(sqlite_engine, params(server, count=40), api_key=KEY)
    wrong = "sk-wrong-0a1b2c3d4e5f6a7b8c9d"
    with pytest.raises(GenerationStopped) as raised:
        run_generation(sqlite_engine, params(server, batch="bad", count=100), api_key=wrong)
    fragments = [KEY, wrong, KEY[3:15], wrong[3:15], KEY[-10:], wrong[-10:]]
    dumped = _dump_text(sqlite_engine)
    logged = caplog.text
    for secret in fragments:
        assert secret not in dumped
        assert secret not in logged
        assert secret not in str(raised.value)
    assert KEY_ENV in dumped  # only the variable's name is stored
    with session_scope(sqlite_engine, write=False) as session:
        errors = [e for e in session.scalars(select(GenerationRequest.error)) if e]
    assert any("[redacted]" in e for e in errors)


def _wait_until(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def test_killed_worker_is_reaped_and_resume_requests_only_what_is_missing(engine, server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    server.configure(latency=0.05)
    job_params = params(server, count=200, n=2, teacher={"concurrency": 4})
    job_id = start_job(engine, ADMIN, "generate", job_params)
    assert KEY not in repr(get_job(engine, job_id).params)
    _wait_until(lambda: counts(engine).get("ok", 0) >= 60)
    with session_scope(engine, write=False) as session:
        pid = session.get(Job, job_id).pid
    os.kill(pid, signal.SIGKILL)
    job = wait_for_job(engine, job_id, timeout=60)
    assert job.state == "failed" and "killed" in job.error
    assert batch_row(engine).status == "failed"
    time.sleep(0.3)  # let requests already on the wire land in the server's count
    before = counts(engine)
    answered = before.get("ok", 0)
    assert 60 <= answered < 400
    requests_before = server.stats.chat_requests
    resumed = wait_for_job(engine, resume_job(engine, ADMIN, job_id), timeout=180)
    assert resumed.state == "succeeded", resumed.error
    assert counts(engine) == {"samples": 400, "distinct_slots": 400, "ok": 400}
    missing_items = (400 - answered) // 2
    retried = sum(resumed.result["run"]["errors_by_kind"].values())  # only timeouts on a loaded machine
    assert (
        server.stats.chat_requests - requests_before == resumed.result["requests"] == missing_items + retried
    )
    assert retried <= 2
    assert batch_row(engine).status == "ready"
    assert KEY not in _dump_text(engine)
    from curation.jobs.runner import LOG_DIR

    for job in (job_id, resumed.id):
        log = LOG_DIR / f"job-{job}.log"
        assert not log.exists() or KEY not in log.read_text(errors="replace")


def test_cancel_stops_the_batch_and_keeps_what_was_answered(sqlite_engine, server, monkeypatch):
    from curation.jobs import cancel_job

    monkeypatch.setenv(KEY_ENV, KEY)
    server.configure(latency=0.05)
    job_id = start_job(sqlite_engine, ADMIN, "generate", params(server, count=400, teacher={"concurrency": 2}))
    _wait_until(lambda: counts(sqlite_engine).get("ok", 0) >= 10)
    cancel_job(sqlite_engine, ADMIN, job_id)
    job = wait_for_job(sqlite_engine, job_id, timeout=60)
    assert job.state == "cancelled"
    batch = batch_row(sqlite_engine)
    assert batch.status == "stopped"
    state = counts(sqlite_engine)
    assert state["samples"] == state["ok"] >= 10
    assert state["ok"] + state.get("pending", 0) == 400


@pytest.mark.parametrize("split", [False, True])
def test_candidates_share_one_request_or_get_one_each(sqlite_engine, server, monkeypatch, split):
    monkeypatch.setenv(KEY_ENV, KEY)
    run_generation(
        sqlite_engine, params(server, count=10, n=3, teacher={"split_candidates": split, "seed": 7})
    )
    assert counts(sqlite_engine) == {"samples": 30, "distinct_slots": 30, "ok": 30}
    assert server.stats.chat_requests == (30 if split else 10)
    assert {entry.n for entry in server.stats.log} == ({1} if split else {3})


def test_costs_and_tokens_are_accounted(sqlite_engine, server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    progress: list[dict[str, Any]] = []
    prices = {"prompt_per_million": 2.0, "completion_per_million": 8.0}
    result = run_generation(
        sqlite_engine,
        params(server, count=30, prices=prices),
        progress=lambda done, total, message, counters: progress.append(counters),
        tick_seconds=0.05,
    )
    with session_scope(sqlite_engine, write=False) as session:
        prompt, completion = session.execute(
            select(func.sum(GenerationRequest.prompt_tokens), func.sum(GenerationRequest.completion_tokens))
        ).one()
    assert result["prompt_tokens"] == prompt > 0 and result["completion_tokens"] == completion > 0
    assert result["cost"] == pytest.approx((prompt * 2.0 + completion * 8.0) / 1e6)
    assert progress and progress[-1]["done"] == 30 and progress[-1]["cost"] == pytest.approx(result["cost"])
    assert set(progress[-1]["latency_ms"]) == {"p50", "p90", "p99"}


def test_teacher_models_lists_the_endpoint_models(server):
    from curation.generation.run import teacher_models
    from curation.teachers.base import TeacherError

    config = {"kind": "openai", "base_url": server.base_url, "api_key_env": None}
    assert teacher_models(config, api_key=KEY) == ["test-model"]
    with pytest.raises(TeacherError) as raised:
        teacher_models(config, api_key="sk-bad-000111222333444")
    assert raised.value.kind == "auth" and "000111222333444" not in str(raised.value)


def test_a_run_spread_over_two_processes_counts_exactly(sqlite_engine, server, monkeypatch):
    """The shard process asks for calls as it goes; both processes must have done
    some (the run outlasts the shard's start-up), and every slot exactly once."""
    monkeypatch.setenv(KEY_ENV, KEY)
    # Answers wait until both processes' first requests are in (4 each): on a loaded machine
    # the coordinator alone could otherwise finish before the shard has started.
    server.configure(latency=0.04, faults={"server_error": 0.05, "truncated": 0.05}, hold_until_concurrent=5)
    progress: list[dict[str, Any]] = []
    result = run_generation(
        sqlite_engine,
        params(server, count=300, teacher={"processes": 2, "concurrency": 8}),
        progress=lambda done, total, message, counters: progress.append(counters),
        tick_seconds=0.1,
    )
    assert result["run"]["shards"] == 2
    by_process = result["run"]["requests_by_process"]
    assert len(by_process) == 2 and min(by_process) > 0 and sum(by_process) == result["run"]["requests"]
    assert counts(sqlite_engine) == {"samples": 300, "distinct_slots": 300, "ok": 300}
    late = result["run"]["errors_by_kind"].get("timeout", 0)
    assert 300 <= server.stats.completions_ok <= 300 + late
    assert result["requests"] == server.stats.chat_requests
    assert any(c and c.get("shards") == 2 for c in progress)
    assert progress[-1]["done"] == 300


def _settled(server: OpenAICompatServer, quiet: float = 1.5) -> bool:
    before = server.stats.chat_requests
    time.sleep(quiet)
    return server.stats.chat_requests == before


def test_shards_of_a_killed_worker_stop_and_resume_completes(sqlite_engine, server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    server.configure(latency=0.05)
    job_id = start_job(
        sqlite_engine, ADMIN, "generate", params(server, count=300, teacher={"processes": 2, "concurrency": 4})
    )
    _wait_until(lambda: counts(sqlite_engine).get("ok", 0) >= 40)
    with session_scope(sqlite_engine, write=False) as session:
        pid = session.get(Job, job_id).pid
    os.kill(pid, signal.SIGKILL)
    assert wait_for_job(sqlite_engine, job_id, timeout=60).state == "failed"
    _wait_until(lambda: _settled(server), timeout=60)  # the orphaned shard noticed and exited
    answered = counts(sqlite_engine)["ok"]
    requests_before = server.stats.chat_requests
    resumed = wait_for_job(sqlite_engine, resume_job(sqlite_engine, ADMIN, job_id), timeout=180)
    assert resumed.state == "succeeded", resumed.error
    assert counts(sqlite_engine) == {"samples": 300, "distinct_slots": 300, "ok": 300}
    retried = sum(resumed.result["run"]["errors_by_kind"].values())
    assert server.stats.chat_requests - requests_before == 300 - answered + retried


def test_a_rerun_with_the_cache_keeps_cached_calls_in_the_coordinator(sqlite_engine, server, monkeypatch):
    """Cached answers cost no request, so shards never receive them: a second run
    of the same configuration (new batch name, so every slot is missing) asks the
    endpoint for nothing, even spread over two processes."""
    monkeypatch.setenv(KEY_ENV, KEY)
    server.configure(latency=0.02)
    first = run_generation(
        sqlite_engine, params(server, count=200, teacher={"processes": 2, "concurrency": 8})
    )
    before = server.stats.chat_requests
    assert first["run"]["requests"] == before
    again = run_generation(
        sqlite_engine, params(server, batch="b2", count=200, teacher={"processes": 2, "concurrency": 8})
    )
    assert server.stats.chat_requests == before
    assert again["run"]["slots_cached"] == 200 and sum(again["run"]["requests_by_process"]) == 0


def test_shards_spawned_but_not_needed_exit(sqlite_engine, server, monkeypatch):
    """Shard processes start before the run knows how many calls are left; with a
    single call there is nothing to share and the spare process exits."""
    from curation.generation import shard

    monkeypatch.setenv(KEY_ENV, KEY)
    groups: list[shard.ShardGroup] = []
    spawn = shard.ShardGroup.spawn.__func__

    def recording_spawn(cls, count):
        groups.append(spawn(cls, count))
        return groups[-1]

    monkeypatch.setattr(shard.ShardGroup, "spawn", classmethod(recording_spawn))
    result = run_generation(sqlite_engine, params(server, count=1, teacher={"processes": 2}))
    assert result["run"]["shards"] == 1 and result["run"]["requests_by_process"] == [1]
    assert counts(sqlite_engine) == {"samples": 1, "distinct_slots": 1, "ok": 1}
    assert len(groups) == 1 and groups[0]._released
    assert all(process.poll() is not None for process in groups[0]._released)
