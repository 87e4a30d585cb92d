"""Batch API mode (`generate --batch-api`), the spend cap (`--max-cost`) and the cost
estimate, against the project's OpenAI-compatible test server (its /v1/files and
/v1/batches expire and fail parts of a batch; its ledger counts what was paid)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from curation import aio
from curation.cli import main
from curation.generation.cost import estimate_prompt_tokens, worst_case_cost
from curation.generation.engine import make_request
from curation.generation.estimate import estimate_generation
from curation.generation.params import GenerationParams
from curation.generation.persist import set_batch_state
from curation.generation.plan import build_plan
from curation.jobs import run_job, submit_job
from curation.store import open_store
from curation.store.db import session_scope
from curation.store.models import Batch, Job
from curation.teachers import make_teacher
from curation.testing.openai_server import OpenAICompatServer
from tests.generation.test_generation import counts
from tests.helpers import ADMIN
from tests.jobs.test_crash_resume import kill_group, start_command, wait_for

KEY_ENV = "ASSAY_BATCH_TEST_KEY"
PRICES = {"prompt_per_million": 3000.0, "completion_per_million": 9000.0}


@pytest.fixture
def batch_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAICompatServer]:
    monkeypatch.setenv(KEY_ENV, "sk-batch-test-0000")
    with OpenAICompatServer(batch_expire_rate=0.10, batch_fail_rate=0.05, seed=7) as running:
        yield running


def generation(server: OpenAICompatServer, *, batch: str = "b", count: int = 1000, **overrides: Any) -> dict:
    return {
        "batch": batch,
        "family": "math",
        "source": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": count}},
        "teacher": {
            "kind": "openai",
            "base_url": server.base_url,
            "model": "test-model",
            "api_key_env": KEY_ENV,
            "timeout": 5.0,
            "concurrency": 8,
            "max_tokens": 64,
            "max_retries": 8,
            **overrides.pop("teacher", {}),
        },
        "batch_poll_seconds": 0.05,
        **overrides,
    }


def run_as_job(engine, params: dict[str, Any]):
    return run_job(engine, submit_job(engine, ADMIN, "generate", params, created_by="test"))


def batch_stats(engine, batch: str = "b") -> dict[str, Any]:
    with session_scope(engine, write=False) as session:
        return dict(session.scalar(select(Batch.stats).where(Batch.name == batch)) or {})


def test_thousand_batch_requests_with_expired_and_failed_parts_end_with_exactly_a_thousand_answers(
    engine, batch_server
):
    job = run_as_job(engine, generation(batch_server, batch_api=True))

    ledger = batch_server.batch.ledger
    assert job.state == "succeeded", job.error
    assert counts(engine) == {"samples": 1000, "distinct_slots": 1000, "ok": 1000}
    assert ledger.paid_twice() == [] and sum(ledger.paid.values()) == 1000
    assert ledger.expired > 0 and ledger.failed > 0
    counters = job.counters["batch_api"]
    assert counters["expired"] == ledger.expired
    assert counters["failed"] == ledger.failed
    assert counters["resubmitted"] == ledger.expired + ledger.failed
    assert counters["submitted"] == 1000 + counters["resubmitted"]
    assert counters["provider_batches"] == ledger.batches_created > 1
    entries = batch_stats(engine)["provider_batches"]
    assert [entry["state"] for entry in entries] == ["closed"] * ledger.batches_created


def test_spend_cap_stops_with_the_reason_within_the_bound_and_a_higher_cap_completes_exactly(
    engine, monkeypatch
):
    monkeypatch.setenv(KEY_ENV, "sk-batch-test-0000")
    with OpenAICompatServer(latency=0.01) as server:
        params = generation(server, count=60, prices=PRICES)
        full = estimate_generation(engine, params)
        cap = round(full.max_cost / 6, 6)  # the answers cost about a third of their worst case
        stopped = run_as_job(engine, {**params, "max_cost": cap})
        first_requests = server.stats.completions_ok
        spent = batch_stats(engine)["cost"]
        answered = counts(engine).get("ok", 0)
        resumed = run_as_job(engine, {**params, "max_cost": full.max_cost * 2})
        second_requests = server.stats.completions_ok - first_requests

    assert stopped.state == "failed"
    assert stopped.error.endswith(f"spend cap of ${cap:g} reached after {answered:,} answers")
    assert 0 < answered < 60
    # The README's bound: what is reserved before sending covers the answers at max_tokens
    # and the prompts as estimated; a prompt longer than its estimate can add its excess.
    plan = build_plan(GenerationParams.from_dict(params))
    excess = max(
        0, max(m["prompt_tokens"] - estimate_prompt_tokens(m["messages"]) for m in prompt_usage(plan))
    )
    assert spent <= cap + server_concurrency(params) * excess * PRICES["prompt_per_million"] / 1e6
    assert resumed.state == "succeeded", resumed.error
    assert counts(engine) == {"samples": 60, "distinct_slots": 60, "ok": 60}
    assert first_requests + second_requests == 60


def prompt_usage(plan) -> list[dict[str, Any]]:
    """The prompt tokens the test server bills for each item (it counts words)."""
    return [
        {"messages": item.messages, "prompt_tokens": sum(len(m["content"].split()) for m in item.messages)}
        for item in plan.items
    ]


def server_concurrency(params: dict[str, Any]) -> int:
    return int(params["teacher"]["concurrency"])


def test_batch_api_spend_cap_sends_only_what_fits_and_the_resume_completes_exactly(engine, batch_server):
    params = generation(batch_server, count=40, batch_api=True, prices=PRICES)
    one = worst_case_cost(PRICES, [{"role": "user", "content": ""}], 64, 1)
    cap = round(estimate_generation(engine, params).max_cost / 2 + one, 6)
    stopped = run_as_job(engine, {**params, "max_cost": cap})
    spent = batch_stats(engine)["cost"]
    resumed = run_as_job(engine, {**params, "max_cost": cap * 10})

    assert stopped.state == "failed" and "spend cap of $" in stopped.error
    assert spent <= cap  # in batch mode nothing runs beyond the reservation when it stops
    assert resumed.state == "succeeded", resumed.error
    assert counts(engine) == {"samples": 40, "distinct_slots": 40, "ok": 40}
    assert batch_server.batch.ledger.paid_twice() == []
    assert sum(batch_server.batch.ledger.paid.values()) == 40


@pytest.mark.parametrize("split", [False, True])
def test_estimate_counts_failed_requests_again(engine, monkeypatch, split):
    monkeypatch.setenv(KEY_ENV, "sk-batch-test-0000")
    with OpenAICompatServer(faults={"server_error": 0.3}, seed=3) as server:
        params = generation(
            server,
            count=30,
            n=2,
            prices=PRICES,
            error_rate_threshold=1.0,
            teacher={"max_retries": 0, "split_candidates": split},
        )
        before = estimate_generation(engine, params)
        run_as_job(engine, params)
    after = estimate_generation(engine, params)
    failed = counts(engine).get("failed", 0)

    assert before.slots == 60 and before.failed_before == 0
    assert before.requests == (60 if split else 30)
    assert failed > 0
    assert after.failed_before == failed and after.slots == failed
    assert 0 < after.max_cost < before.max_cost


def test_killed_batch_run_resumes_by_reattaching_and_pays_no_request_twice(store_url, monkeypatch, capsys):
    monkeypatch.setenv(KEY_ENV, "sk-batch-test-0000")
    engine = open_store(store_url)
    with OpenAICompatServer(
        batch_expire_rate=0.10, batch_fail_rate=0.05, batch_seconds=1.0, seed=5
    ) as server:
        args = [
            "generate",
            "--batch",
            "b",
            "--source",
            "reasoning_gym:basic_arithmetic:200",
            "--teacher",
            "openai",
            "--base-url",
            server.base_url,
            "--model",
            "test-model",
            "--api-key-env",
            KEY_ENV,
            "--batch-api",
            "--batch-poll-seconds",
            "0.05",
        ]
        run = start_command(store_url, *args)
        wait_for(
            lambda: any(entry.get("id") for entry in batch_stats(engine).get("provider_batches", [])), run
        )
        kill_group(run)
        [in_flight] = batch_stats(engine)["provider_batches"]
        created_before_resume = server.batch.ledger.batches_created

        online = [arg for arg in args if arg not in ("--batch-api", "--batch-poll-seconds", "0.05")]
        refused_online = main(["--db", store_url, *online, "--resume"])  # in this process: one start less
        refusal = capsys.readouterr().err
        resumed = main(["--db", store_url, *args, "--resume"])
        printed = capsys.readouterr().out

        ledger = server.batch.ledger
        assert refused_online == 1 and resumed == 0
        # The estimate before the resume: the requests still missing, at batch prices.
        assert "estimate: " in printed and "at batch prices" in printed
        assert created_before_resume == 1 and in_flight["state"] == "open"
        assert ledger.paid_twice() == [] and sum(ledger.paid.values()) == 200
        assert counts(engine) == {"samples": 200, "distinct_slots": 200, "ok": 200}
        # The resume re-attached to the batch in flight: every request it sent again was one
        # the provider reported failed or expired.
        assert ledger.batches_created > 1
        assert sum(ledger.processed.values()) == 200 + ledger.expired + ledger.failed
        with session_scope(engine, write=False) as session:
            [_, job] = session.scalars(select(Job).order_by(Job.id)).all()  # the refused start left none
            assert "continue it with --batch-api to re-attach" in refusal
            assert job.counters["batch_api"]["reattached"] == 1


def test_a_provider_batch_created_but_not_recorded_before_a_kill_is_found_by_its_input_file(
    engine, batch_server
):
    """The window between creating a provider batch and recording its id: the resume
    finds the batch by the input file recorded just before, and creates none."""
    batch_server.batch.expire_rate = batch_server.batch.fail_rate = 0.0
    params = generation(batch_server, count=20, batch_api=True)
    assert (
        run_as_job(engine, {**params, "max_cost": 0.0, "prices": PRICES}).state == "failed"
    )  # sends nothing
    checked = GenerationParams.from_dict(params)
    teacher = make_teacher(checked.teacher, api_key="sk-batch-test-0000")
    lines = [
        teacher.batch_line(f"{item.index}:0", make_request(teacher, item, [0]))
        for item in build_plan(checked).items
    ]

    async def submit_as_the_killed_run_did() -> str:
        try:
            file_id = await teacher.upload_batch_input(("\n".join(lines) + "\n").encode())
            await teacher.create_batch(file_id, {})
            return file_id
        finally:
            await teacher.aclose()

    file_id = aio.run(submit_as_the_killed_run_did())
    with session_scope(engine, write=False) as session:
        batch_id = session.scalar(select(Batch.id).where(Batch.name == "b"))
    entry = {
        "input_file_id": file_id,
        "id": None,
        "state": "open",
        "custom_ids": [f"{i}:0" for i in range(20)],
    }
    set_batch_state(engine, batch_id, provider_batches=[entry])

    resumed = run_as_job(engine, params)

    assert resumed.state == "succeeded", resumed.error
    assert batch_server.batch.ledger.batches_created == 1
    assert batch_server.batch.ledger.paid_twice() == [] and sum(batch_server.batch.ledger.paid.values()) == 20
    assert counts(engine) == {"samples": 20, "distinct_slots": 20, "ok": 20}
    assert batch_stats(engine)["provider_batches"][0]["id"] is not None
