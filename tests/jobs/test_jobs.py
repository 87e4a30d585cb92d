"""Background jobs in real worker processes: progress, failure, death, cancel, resume."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from curation.cli import main
from curation.jobs import (
    JobBusy,
    cancel_job,
    get_job,
    list_jobs,
    resume_job,
    start_job,
    submit_job,
    wait_for_job,
)
from curation.jobs.liveness import process_start_token
from curation.store import session_scope
from curation.store.models import Batch, Job, Sample, utcnow
from tests.helpers import ADMIN, sample_records, write_jsonl


def count(engine, model) -> int:
    with session_scope(engine, write=False) as session:
        return session.scalar(select(func.count()).select_from(model))


def test_import_job_runs_in_a_worker_process(engine, records_file):
    job_id = start_job(engine, ADMIN, "import", {"path": str(records_file(50)), "batch": "b"})
    job = wait_for_job(engine, job_id, timeout=120)
    assert job.state == "succeeded", job.error
    assert job.result["imported"] == 50
    assert job.progress_done == job.progress_total == 50
    assert count(engine, Sample) == 50


def test_failed_job_records_the_error_and_changes_nothing(engine, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [*sample_records(3), {"family": "math", "prompt": "p"}])
    job = wait_for_job(engine, start_job(engine, ADMIN, "import", {"path": str(path), "batch": "b"}), timeout=120)
    assert job.state == "failed"
    assert "line 4, field 'response': missing" in job.error
    assert count(engine, Batch) == 0


def _wait_until(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def _worker_pid(engine, job_id: int) -> int | None:
    from curation.store.models import Job

    with session_scope(engine, write=False) as session:
        return session.get(Job, job_id).pid


BIG = 150_000


@pytest.fixture
def big_file(tmp_path):
    return write_jsonl(tmp_path / "big.jsonl", sample_records(BIG))


def test_killed_worker_is_marked_failed_and_leaves_nothing_half_imported(engine, big_file):
    job_id = start_job(engine, ADMIN, "import", {"path": str(big_file), "batch": "big"})
    # Freeze the worker as soon as rows are going in, check the import is half done, then kill it.
    _wait_until(lambda: get_job(engine, job_id).message.startswith("imported"))
    pid = _worker_pid(engine, job_id)
    os.kill(pid, signal.SIGSTOP)
    assert get_job(engine, job_id).state == "running"
    assert 0 < count(engine, Sample) < BIG
    os.kill(pid, signal.SIGKILL)
    job = wait_for_job(engine, job_id, timeout=60)
    assert job.state == "failed"
    assert "exited without finishing" in job.error
    assert count(engine, Sample) == 0
    assert count(engine, Batch) == 0

    resumed = wait_for_job(engine, resume_job(engine, ADMIN, job_id), timeout=300)
    assert resumed.state == "succeeded", resumed.error
    assert resumed.resumed_from == job_id
    assert count(engine, Sample) == BIG


def test_cancelled_job_stops_and_cleans_up(sqlite_engine, big_file):
    engine = sqlite_engine
    job_id = start_job(engine, ADMIN, "import", {"path": str(big_file), "batch": "big"})
    _wait_until(lambda: get_job(engine, job_id).state == "running")
    cancel_job(engine, ADMIN, job_id)
    job = wait_for_job(engine, job_id, timeout=120)
    assert job.state == "cancelled"
    assert count(engine, Sample) == 0


def test_listing_jobs_reaps_a_dead_worker(sqlite_engine, records_file):
    """A job row claiming to run in a process that does not exist is shown as failed."""
    from sqlalchemy import update

    from curation.jobs import submit_job
    from curation.store.models import Job

    job_id = submit_job(sqlite_engine, ADMIN, "import", {"path": str(records_file(3)), "batch": "b"})
    with session_scope(sqlite_engine) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state="running", pid=2**22 + 1, host=os.uname().nodename, pid_start="1")
        )
    [job] = list_jobs(sqlite_engine)
    assert job.state == "failed"
    assert "exited without finishing" in job.error


def _claim_for(engine, job_id: int, **values) -> None:
    """Make a job row look as if a worker claimed it (`values`: pid, host, heartbeat …)."""
    with session_scope(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(state="running", **values))


def _job_count(engine) -> int:
    return count(engine, Job)


def _live_here() -> dict:
    return {
        "pid": os.getpid(),
        "pid_start": process_start_token(os.getpid()),
        "host": socket.gethostname(),
        "heartbeat_at": utcnow(),
    }


def test_a_start_next_to_a_live_job_is_refused_before_any_row_and_says_who_holds_it(engine):
    job_id = submit_job(engine, ADMIN, "generate", {"batch": "k1"})
    _claim_for(engine, job_id, **_live_here())
    with pytest.raises(JobBusy) as refused:
        submit_job(engine, ADMIN, "generate", {"batch": "k1"})
    message = str(refused.value)
    assert message.startswith(f"batch 'k1' is being generated by job {job_id} (pid {os.getpid()} on host ")
    assert socket.gethostname() in message
    assert "last heartbeat 0s ago at " in message
    assert f"`python -m curation cancel {job_id}`" in message
    assert _job_count(engine) == 1
    assert get_job(engine, job_id).state == "running"
    assert submit_job(engine, ADMIN, "generate", {"batch": "other"}) == job_id + 1  # another batch is free


@pytest.mark.parametrize(
    ("kind", "held", "asked", "message"),
    [
        ("verify", {"batches": ["a", "b"]}, {"batches": ["b"]}, "batch 'b' is being verified by job 1"),
        ("embed", {"reference": True}, {"reference": True}, "the reference set is being embedded by job 1"),
        ("dedup", {"batch": "a"}, {"batch": "a"}, "batch 'a' is being deduplicated by job 1"),
        (
            "import",
            {"path": "x.jsonl", "batch": "a"},
            {"path": "y.jsonl", "batch": "a"},
            "batch 'a' is being imported by job 1",
        ),
        (
            "export",
            {"out": "/tmp/o"},
            {"out": "/tmp/o"},
            "export destination '/tmp/o' is being written by job 1",
        ),
    ],
)
def test_each_kind_names_what_it_holds(sqlite_engine, kind, held, asked, message):
    _claim_for(sqlite_engine, submit_job(sqlite_engine, ADMIN, kind, held), **_live_here())
    with pytest.raises(JobBusy, match=re.escape(message)):
        submit_job(sqlite_engine, ADMIN, kind, asked)
    assert _job_count(sqlite_engine) == 1


def test_a_dead_job_is_reaped_before_the_check_so_the_start_goes_ahead(engine):
    """Issue 15: a worker killed a moment ago still has a fresh heartbeat; its batch is
    not held by it, and its partial work is undone before the new job is created."""
    dead = submit_job(engine, ADMIN, "generate", {"batch": "k1"})
    _claim_for(engine, dead, **{**_live_here(), "pid": 2**22 + 1})
    started = submit_job(engine, ADMIN, "generate", {"batch": "k1"})
    assert started == dead + 1
    old = get_job(engine, dead)
    assert old.state == "failed"
    assert old.error == f"worker process {2**22 + 1} exited without finishing (killed or crashed)"


@pytest.mark.parametrize(("silent_for", "refused"), [(5, True), (600, False)])
def test_a_job_on_another_host_counts_while_its_heartbeat_is_fresh(sqlite_engine, silent_for, refused):
    job_id = submit_job(sqlite_engine, ADMIN, "dedup", {"batch": "a"})
    beat = utcnow() - timedelta(seconds=silent_for)
    _claim_for(sqlite_engine, job_id, pid=4242, pid_start="1", host="elsewhere", heartbeat_at=beat)
    if refused:
        with pytest.raises(JobBusy, match=r"\(pid 4242 on host elsewhere, last heartbeat 5s ago"):
            submit_job(sqlite_engine, ADMIN, "dedup", {"batch": "a"})
    else:
        submit_job(sqlite_engine, ADMIN, "dedup", {"batch": "a"})
        assert get_job(sqlite_engine, job_id).error.startswith("no heartbeat from worker on elsewhere since")


def test_resume_of_a_job_whose_worker_just_died_needs_no_reaping_first(sqlite_engine, records_file):
    job_id = submit_job(sqlite_engine, ADMIN, "import", {"path": str(records_file(3)), "batch": "b"})
    _claim_for(sqlite_engine, job_id, **{**_live_here(), "pid": 2**22 + 1})
    resumed = wait_for_job(sqlite_engine, resume_job(sqlite_engine, ADMIN, job_id), timeout=120)
    assert resumed.state == "succeeded", resumed.error
    assert get_job(sqlite_engine, job_id).state == "failed"


def test_the_command_line_refuses_a_resume_next_to_a_live_run_and_leaves_no_job(sqlite_engine, capsys):
    db = sqlite_engine.url.render_as_string(hide_password=False)
    job_id = submit_job(sqlite_engine, ADMIN, "generate", {"batch": "k1"})
    _claim_for(sqlite_engine, job_id, **_live_here())
    code = main(["--db", db, "generate", "--batch", "k1", "--source", "humaneval:2", "--resume"])
    assert code == 1
    error = capsys.readouterr().err
    assert f"batch 'k1' is being generated by job {job_id} (pid {os.getpid()}" in error
    assert f"`python -m curation cancel {job_id}`" in error
    assert _job_count(sqlite_engine) == 1


def test_a_queued_job_whose_owner_died_before_it_started_is_reaped_at_once(sqlite_engine):
    """The app (or a command) died between creating the job and its worker claiming it."""
    job_id = submit_job(sqlite_engine, ADMIN, "generate", {"batch": "k1"})
    assert (
        get_job(sqlite_engine, job_id).pid == os.getpid()
    )  # owned by its submitter until a worker claims it
    with session_scope(sqlite_engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(pid=2**22 + 1))
    submit_job(sqlite_engine, ADMIN, "generate", {"batch": "k1"})
    old = get_job(sqlite_engine, job_id)
    assert old.state == "failed"
    assert (
        old.error
        == f"process {2**22 + 1} that was to run the job exited before it started (killed or crashed)"
    )


def test_an_import_command_after_a_dead_import_job_of_the_same_batch_goes_ahead(
    sqlite_engine, records_file, capsys
):
    """The dead job's half-imported batch is removed (its cleanup) before the command
    looks for the batch, so the user is not told the batch already exists."""
    job_id = submit_job(sqlite_engine, ADMIN, "import", {"path": "gone.jsonl", "batch": "b"})
    _claim_for(sqlite_engine, job_id, **{**_live_here(), "pid": 2**22 + 1})
    with session_scope(sqlite_engine) as session:
        session.add(Batch(name="b", origin="synthetic", source="half", status="importing"))
    db = sqlite_engine.url.render_as_string(hide_password=False)
    assert main(["--db", db, "import", str(records_file(4)), "--batch", "b"]) == 0, capsys.readouterr().err
    assert count(sqlite_engine, Sample) == 4
    assert get_job(sqlite_engine, job_id).state == "failed"
