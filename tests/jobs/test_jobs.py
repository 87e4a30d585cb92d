"""Background jobs in real worker processes: progress, failure, death, cancel, resume."""

from __future__ import annotations

import os
import signal
import time

import pytest
from sqlalchemy import func, select

from curation.jobs import cancel_job, get_job, list_jobs, resume_job, start_job, wait_for_job
from curation.store import session_scope
from curation.store.models import Batch, Sample
from tests.helpers import sample_records, write_jsonl


def count(engine, model) -> int:
    with session_scope(engine, write=False) as session:
        return session.scalar(select(func.count()).select_from(model))


def test_import_job_runs_in_a_worker_process(engine, records_file):
    job_id = start_job(engine, "import", {"path": str(records_file(50)), "batch": "b"})
    job = wait_for_job(engine, job_id, timeout=120)
    assert job.state == "succeeded", job.error
    assert job.result["imported"] == 50
    assert job.progress_done == job.progress_total == 50
    assert count(engine, Sample) == 50


def test_failed_job_records_the_error_and_changes_nothing(engine, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [*sample_records(3), {"family": "math", "prompt": "p"}])
    job = wait_for_job(engine, start_job(engine, "import", {"path": str(path), "batch": "b"}), timeout=120)
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
    job_id = start_job(engine, "import", {"path": str(big_file), "batch": "big"})
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

    resumed = wait_for_job(engine, resume_job(engine, job_id), timeout=300)
    assert resumed.state == "succeeded", resumed.error
    assert resumed.resumed_from == job_id
    assert count(engine, Sample) == BIG


def test_cancelled_job_stops_and_cleans_up(sqlite_engine, big_file):
    engine = sqlite_engine
    job_id = start_job(engine, "import", {"path": str(big_file), "batch": "big"})
    _wait_until(lambda: get_job(engine, job_id).state == "running")
    cancel_job(engine, job_id)
    job = wait_for_job(engine, job_id, timeout=120)
    assert job.state == "cancelled"
    assert count(engine, Sample) == 0


def test_listing_jobs_reaps_a_dead_worker(sqlite_engine, records_file):
    """A job row claiming to run in a process that does not exist is shown as failed."""
    from sqlalchemy import update

    from curation.jobs import submit_job
    from curation.store.models import Job

    job_id = submit_job(sqlite_engine, "import", {"path": str(records_file(3)), "batch": "b"})
    with session_scope(sqlite_engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(state="running", pid=2**22 + 1, host=os.uname().nodename, pid_start="1"))
    [job] = list_jobs(sqlite_engine)
    assert job.state == "failed"
    assert "exited without finishing" in job.error
