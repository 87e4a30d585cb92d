"""Background jobs: long work runs in a worker process and reports through the store."""

from curation.jobs.liveness import JobBusy, reap_dead_jobs, refuse_if_busy
from curation.jobs.registry import JOB_KINDS, JobCancelled, JobContext, JobKind, job_kind
from curation.jobs.runner import (
    JobView,
    cancel_job,
    get_job,
    list_jobs,
    resume_job,
    run_job,
    start_job,
    submit_job,
    wait_for_job,
)

__all__ = [
    "JOB_KINDS",
    "JobBusy",
    "JobCancelled",
    "JobContext",
    "JobKind",
    "JobView",
    "cancel_job",
    "get_job",
    "job_kind",
    "list_jobs",
    "reap_dead_jobs",
    "refuse_if_busy",
    "resume_job",
    "run_job",
    "start_job",
    "submit_job",
    "wait_for_job",
]
