"""A cancel reaches the run as a JobCancelled raised from the progress callback, at the
start, during the run or at its very end; it is recognised by its class (a subclass
is a cancel too), never by its name."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from curation.generation.run import run_generation
from curation.jobs import JobCancelled
from curation.store import session_scope
from curation.store.models import Batch


class CancelledByOperator(JobCancelled):
    """A more specific cancel, as a job runner or a wrapper might raise."""


def simulated_params(count: int = 40) -> dict[str, Any]:
    return {
        "batch": "cancel",
        "family": "math",
        "source": {"kind": "reasoning_gym", "datasets": {"basic_arithmetic": count}},
        "teacher": {"kind": "simulated", "concurrency": 2, "latency": 0.02},
    }


def cancelling_at(moment: str):
    """A progress callback that raises CancelledByOperator at `moment`: "start" (the
    first call, before any request), "during" (a live tick) or "end" ("finished")."""

    def progress(done: int, total: int | None, message: str | None, counters: dict[str, Any] | None) -> None:
        if moment == "start" or (moment == "end" and message == "finished"):
            raise CancelledByOperator()
        if moment == "during" and counters is not None and message != "finished":
            raise CancelledByOperator()

    return progress


def batch_state(engine) -> tuple[str, str | None]:
    with session_scope(engine, write=False) as session:
        batch = session.scalar(select(Batch).where(Batch.name == "cancel"))
        return batch.status, (batch.stats or {}).get("stop_reason")


@pytest.mark.parametrize("moment", ["start", "during"])
def test_a_cancel_subclass_stops_the_run_as_cancelled(sqlite_engine, moment):
    with pytest.raises(JobCancelled):
        run_generation(sqlite_engine, simulated_params(), progress=cancelling_at(moment), tick_seconds=0.01)
    assert batch_state(sqlite_engine) == ("stopped", "cancelled by user")


def test_a_cancel_subclass_at_the_very_end_changes_nothing(sqlite_engine):
    result = run_generation(
        sqlite_engine, simulated_params(), progress=cancelling_at("end"), tick_seconds=0.01
    )
    assert result["status"] == "ready"
    assert batch_state(sqlite_engine) == ("ready", None)
