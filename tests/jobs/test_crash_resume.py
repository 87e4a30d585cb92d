"""Crash recovery end to end, with real processes (issue 15).

A command is started as a user would (`python -m curation ...` in its own process
group), killed with SIGKILL part-way (as when a terminal or a machine dies), and the
same command is run again AT ONCE: no `jobs`, no reaping, nothing in between. The
rerun must reap the dead job itself, complete the work exactly (every item once) and
send only what is missing. Progress is awaited through the store, never by time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, insert, select

from curation.config import PROJECT_ROOT
from curation.data import content_hash
from curation.jobs import get_job
from curation.jobs.liveness import process_start_token
from curation.store import open_store, session_scope
from curation.store.models import Batch, Embedding, GenerationRequest, Job, Sample, Verdict
from curation.testing.openai_server import OpenAICompatServer
from curation.verification.judge import DEFAULT_RUBRIC
from tests.helpers import cli

KEY_ENV = "ASSAY_CRASH_TEST_KEY"
GENERATE_ITEMS = 300
GENERATE_CONCURRENCY = 4
#: Answers a generation holds before committing them (persist.Writer flushes every 200 rows or 0.5 s).
GENERATE_UNCOMMITTED = 200
JUDGED_SAMPLES = 768
VERIFY_CHUNK = 256  # the verify job commits verdicts chunk by chunk (VerifyParams.chunk_size)
VERIFY_WINDOW = 2  # chunks submitted ahead of the one being committed, with --jobs 1
EMBEDDED_SAMPLES = 9000
EMBED_CHUNK = 4096  # embed_selection commits one chunk of vectors at a time


def start_command(db: str, *args: str) -> subprocess.Popen:
    """`python -m curation --db DB ARGS` in its own process group, as from a terminal."""
    return subprocess.Popen(
        [sys.executable, "-m", "curation", "--db", db, *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(predicate: Callable[[], bool], process: subprocess.Popen | None = None) -> None:
    """Poll until `predicate()` holds; fail at once if `process` ended first."""
    while not predicate():
        if process is not None and process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the command ended (exit {process.returncode}) before the kill point:\n{out}\n{err}")
        time.sleep(0.05)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the command's whole process group (workers and shards included)."""
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def scalar(engine, query) -> int:
    with session_scope(engine, write=False) as session:
        return session.scalar(query) or 0


def job_states(engine) -> list[tuple[str, str, str | None]]:
    with session_scope(engine, write=False) as session:
        return [(job.kind, job.state, job.error) for job in session.scalars(select(Job).order_by(Job.id))]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAICompatServer]:
    monkeypatch.setenv(KEY_ENV, "sk-crash-test-0000")
    with OpenAICompatServer(latency=0.05) as running:
        yield running


def settle(server: OpenAICompatServer) -> int:
    """Requests the server received, once every connection of the killed client is
    closed and every request it sent has been counted."""
    wait_for(lambda: server.idle)
    return server.stats.chat_requests


def test_generate_killed_then_resumed_at_once_completes_exactly(store_url, server):
    engine = open_store(store_url)
    args = [
        "generate",
        "--batch",
        "k1",
        "--source",
        f"reasoning_gym:basic_arithmetic:{GENERATE_ITEMS}",
        "--teacher",
        "openai",
        "--base-url",
        server.base_url,
        "--model",
        "test-model",
        "--api-key-env",
        KEY_ENV,
        "--concurrency",
        str(GENERATE_CONCURRENCY),
        "--max-retries",
        "0",
    ]
    batch_id = select(Batch.id).where(Batch.name == "k1").scalar_subquery()
    committed = select(func.count()).select_from(Sample).where(Sample.batch_id == batch_id)
    run = start_command(store_url, *args)
    wait_for(lambda: scalar(engine, committed) >= 40, run)
    kill_group(run)
    answered = scalar(engine, committed)
    sent_before = settle(server)
    assert job_states(engine) == [("generate", "running", None)]  # nothing reaped it yet

    resumed = cli(*args, "--resume", db=store_url)

    assert resumed.returncode == 0, resumed.stderr
    assert f"{GENERATE_ITEMS}/{GENERATE_ITEMS} ok" in resumed.stdout
    with session_scope(engine, write=False) as session:
        slots = session.execute(
            select(Sample.item_index, Sample.candidate_index).where(Sample.batch_id == batch_id)
        ).all()
        statuses = dict(
            session.execute(
                select(GenerationRequest.status, func.count())
                .where(GenerationRequest.batch_id == batch_id)
                .group_by(GenerationRequest.status)
            ).all()
        )
        assert session.scalar(select(Batch.status).where(Batch.name == "k1")) == "ready"
    assert len(slots) == len(set(slots)) == GENERATE_ITEMS
    assert statuses == {"ok": GENERATE_ITEMS}
    # Lost at the kill: requests on the wire plus answers not yet committed.
    assert_rerun_sent_only_what_was_missing(
        engine,
        server,
        "generate",
        total=GENERATE_ITEMS,
        kept=answered,
        sent_before=sent_before,
        in_flight=GENERATE_CONCURRENCY + GENERATE_UNCOMMITTED,
    )


def assert_rerun_sent_only_what_was_missing(
    engine, server, what: str, *, total: int, kept: int, sent_before: int, in_flight: int
) -> None:
    """The killed job is failed with its reason, the rerun succeeded and asked the server for
    exactly the missing part; what was lost at the kill is at most what was in flight."""
    [(_, first_state, first_error), (_, second_state, _)] = job_states(engine)
    assert first_state == "failed" and "exited without finishing" in first_error
    assert second_state == "succeeded"
    lost_at_kill = sent_before - kept
    resent = server.stats.chat_requests - sent_before
    print(
        f"{what}: {kept} kept at the kill, {lost_at_kill} requests sent but not kept, {resent} sent by the rerun"
    )
    assert resent == total - kept
    assert 0 <= lost_at_kill <= in_flight


def judge_reply(messages: list[dict], index: int) -> str:
    """A judge model that passes every answer."""
    criteria = {c.name: {"verdict": "yes", "reason": "fine"} for c in DEFAULT_RUBRIC}
    return json.dumps({"criteria": criteria, "score": 8})


def add_open_batch(engine, name: str, n: int) -> None:
    """A synthetic batch of n distinct open-ended answers, inserted in bulk."""
    with session_scope(engine) as session:
        batch = Batch(name=name, origin="synthetic", source=f"test:{name}", family="open")
        session.add(batch)
        session.flush()
        rows = []
        for i in range(n):
            prompt = f"Explain idea number {i} of {name} to a curious student."
            response = (
                f"Idea {i} is explained here in several plain words, with an example and a short summary."
            )
            rows.append(
                {
                    "batch_id": batch.id,
                    "item_index": i,
                    "family": "open",
                    "prompt": prompt,
                    "response": response,
                    "content_hash": content_hash("open", prompt, response),
                }
            )
        session.execute(insert(Sample), rows)


def test_verify_killed_then_rerun_at_once_judges_each_sample_once(store_url, server):
    engine = open_store(store_url)
    add_open_batch(engine, "v1", JUDGED_SAMPLES)
    server.configure(responder=judge_reply)
    args = [
        "verify",
        "--batch",
        "v1",
        "--verifier",
        "judge",
        "--jobs",
        "1",
        "--judge-base-url",
        server.base_url,
        "--judge-model",
        "test-model",
        "--judge-api-key-env",
        KEY_ENV,
    ]
    judged = select(func.count()).select_from(Verdict).where(Verdict.verifier == "judge")
    run = start_command(store_url, *args)
    wait_for(lambda: scalar(engine, judged) >= VERIFY_CHUNK, run)
    kill_group(run)
    kept = scalar(engine, judged)
    sent_before = settle(server)
    assert job_states(engine) == [("verify", "running", None)]

    rerun = cli(*args, db=store_url)

    assert rerun.returncode == 0, rerun.stderr
    with session_scope(engine, write=False) as session:
        verdicts = (
            session.execute(select(Verdict.sample_id).where(Verdict.verifier == "judge")).scalars().all()
        )
        samples = session.scalars(select(Sample.id)).all()
    assert sorted(verdicts) == sorted(samples) and len(samples) == JUDGED_SAMPLES
    # Lost at the kill: the chunks submitted but not yet committed.
    assert_rerun_sent_only_what_was_missing(
        engine,
        server,
        "verify",
        total=JUDGED_SAMPLES,
        kept=kept,
        sent_before=sent_before,
        in_flight=VERIFY_WINDOW * VERIFY_CHUNK,
    )


def test_embed_killed_then_rerun_at_once_embeds_only_what_is_missing(store_url):
    engine = open_store(store_url)
    with session_scope(engine) as session:
        batch = Batch(name="e1", origin="synthetic", source="test:e1", family="open")
        session.add(batch)
        session.flush()
        rows = [
            {
                "batch_id": batch.id,
                "item_index": i,
                "family": "open",
                "prompt": f"Prompt {i}?",
                "response": f"Answer {i}.",
                "content_hash": content_hash("open", f"Prompt {i}?", f"Answer {i}."),
            }
            for i in range(EMBEDDED_SAMPLES)
        ]
        session.execute(insert(Sample), rows)
    vectors = select(func.count()).select_from(Embedding)
    run = start_command(store_url, "embed", "--batch", "e1")
    wait_for(lambda: scalar(engine, vectors) >= 1, run)
    kill_group(run)
    kept = scalar(engine, vectors)
    assert job_states(engine) == [("embed", "running", None)]  # nothing reaped it yet

    rerun = cli("embed", "--batch", "e1", db=store_url)

    assert rerun.returncode == 0, rerun.stderr
    print(f"embed: {kept} vectors kept at the kill; the rerun said: {rerun.stdout.strip()}")
    [(_, first_state, first_error), (_, second_state, _)] = job_states(engine)
    assert first_state == "failed" and "exited without finishing" in first_error
    assert second_state == "succeeded"
    assert kept == EMBED_CHUNK
    assert (
        f"batch 'e1': {EMBEDDED_SAMPLES:,} samples, {EMBEDDED_SAMPLES:,} distinct texts, {kept:,} already cached, "
        f"{EMBEDDED_SAMPLES - kept:,} embedded"
    ) in rerun.stdout
    with session_scope(engine, write=False) as session:
        embedded = session.scalars(select(Embedding.content_hash)).all()
        hashes = session.scalars(select(Sample.content_hash)).all()
    assert sorted(embedded) == sorted(hashes)


#: Stands in for the app's server: starts a job as a page's start button does, then
#: watches it as the page's progress fragment does (reap, read, once a second).
APP_SERVER = """
import json, sys, time
from curation.auth import Actor
from curation.jobs import get_job, reap_dead_jobs, start_job
from curation.store import open_store
engine = open_store(sys.argv[1])
job_id = start_job(engine, Actor("app", "admin"), "generate", json.loads(sys.argv[2]))
print(job_id, flush=True)
while True:
    reap_dead_jobs(engine)
    get_job(engine, job_id)
    time.sleep(1)
"""


def test_killing_the_app_while_it_watches_a_job_leaves_the_job_running_and_resumable(store_url, server):
    engine = open_store(store_url)
    params = {
        "batch": "a1",
        "family": "math",
        "source": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": 300}},
        "teacher": {
            "kind": "openai",
            "base_url": server.base_url,
            "model": "test-model",
            "api_key_env": KEY_ENV,
            "concurrency": 2,
            "max_retries": 0,
        },
    }
    app = subprocess.Popen(
        [sys.executable, "-c", APP_SERVER, store_url, json.dumps(params)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    job_id = int(app.stdout.readline())
    batch_id = select(Batch.id).where(Batch.name == "a1").scalar_subquery()
    committed = select(func.count()).select_from(Sample).where(Sample.batch_id == batch_id)
    wait_for(lambda: scalar(engine, committed) >= 20, app)
    kill_group(app)

    # The worker runs in a session of its own: it goes on answering without the app.
    at_app_kill = scalar(engine, committed)
    wait_for(lambda: scalar(engine, committed) > at_app_kill)
    worker = get_job(engine, job_id)
    # Held still (alive, not finishing) while a start is tried: the start is refused,
    # naming the worker, and leaves no job behind.
    os.killpg(worker.pid, signal.SIGSTOP)
    refused = cli(
        "generate",
        "--batch",
        "a1",
        "--source",
        "reasoning_gym:basic_arithmetic:300",
        "--resume",
        db=store_url,
    )
    assert refused.returncode == 1
    assert (
        f"batch 'a1' is being generated by job {job_id} (pid {worker.pid} on host {worker.host}, last heartbeat"
        in refused.stderr
    )
    assert f"`python -m curation cancel {job_id}`" in refused.stderr
    assert [state for _, state, _ in job_states(engine)] == ["running"]

    # Then the machine "dies" too: the worker is killed, and `resume ID` at once completes the batch.
    os.killpg(worker.pid, signal.SIGKILL)
    wait_for(lambda: process_start_token(worker.pid) is None)
    answered = scalar(engine, committed)
    sent_before = settle(server)
    resumed = cli("resume", str(job_id), "--wait", db=store_url)

    assert resumed.returncode == 0, resumed.stderr
    with session_scope(engine, write=False) as session:
        slots = session.execute(
            select(Sample.item_index, Sample.candidate_index).where(Sample.batch_id == batch_id)
        ).all()
    assert len(slots) == len(set(slots)) == 300
    assert server.stats.chat_requests - sent_before == 300 - answered
    [(_, first_state, first_error), (_, second_state, _)] = job_states(engine)
    assert first_state == "failed" and "exited without finishing" in first_error
    assert second_state == "succeeded"
