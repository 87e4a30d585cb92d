"""Verdicts for the demo workspace: the simulated teacher's batches are verified
with the default chains, so their failures match the faults it injected
(`metadata.simulated_fault`; see `fault_confusion`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, select

from curation.generation.demo import DEMO_BATCHES
from curation.store.db import session_scope
from curation.store.models import Batch, Sample
from curation.verification.runner import run_verification


def verify_demo_batches(
    engine: Engine,
    *,
    jobs: int | None = None,
    batches: Sequence[str] | None = None,
    progress: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """Verify the simulated demo batches that exist and are ready (only what is missing),
    in this process; returns the run summary (``{"samples": 0, ...}`` when there are none).
    `batches` defaults to `curation.generation.demo.DEMO_BATCHES`."""
    wanted = list(batches) if batches is not None else list(DEMO_BATCHES)
    with session_scope(engine, write=False) as session:
        ready = set(
            session.scalars(select(Batch.name).where(Batch.name.in_(wanted), Batch.status == "ready"))
        )
    names = [name for name in wanted if name in ready]
    if not names:
        return {"samples": 0, "verdicts": 0, "batches": []}
    return run_verification(engine, {"batches": names, "jobs": jobs}, progress=progress)


def fault_confusion(engine: Engine, batch_names: Sequence[str]) -> dict[str, dict[str, int]]:
    """Injected fault kind (``metadata.simulated_fault``; "none" for a clean sample) ->
    counts of overall outcomes ("passed", "failed", "unknown")."""
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(Sample.meta, Sample.passed)
            .join(Batch, Batch.id == Sample.batch_id)
            .where(Batch.name.in_(list(batch_names)))
        ).all()
    table: dict[str, dict[str, int]] = {}
    for meta, passed in rows:
        fault = (meta or {}).get("simulated_fault") or "none"
        counts = table.setdefault(str(fault), {"passed": 0, "failed": 0, "unknown": 0})
        counts[{True: "passed", False: "failed", None: "unknown"}[passed]] += 1
    return dict(sorted(table.items()))


__all__ = ["fault_confusion", "verify_demo_batches"]
