"""Verifying stored samples: the body of the "verify" job, the CLI and the demo seeding.

Parameters (`VerifyParams`, the job's params)::

    {"batches": ["math round 1", ...],   # batch names; empty with no sample_ids = every synthetic batch
     "sample_ids": [1, 2, ...],          # optional: only these samples
     "families": ["math", ...],          # optional: only these families
     "verifiers": ["quality", ...],      # optional: default = each family's chain (`chains`)
     "jobs": 2,                          # worker processes; default os.cpu_count()
     "reverify": false,                  # true: verify again even where a verdict exists
     "judge": {"base_url", "model", "api_key_env", ...} | null,   # null: ASSAY_JUDGE_* env
     "chunk_size": 256,
     "executor": "local" | "ray",        # where the verifiers run (`curation.executors`)
     "ray_address": "host:port" | "auto" | null}   # null with "ray": a local Ray instance

Only what is missing is done: a sample is verified by a verifier when it has no
verdict of that verifier's current version. With ``reverify`` the verdicts made
before the job started (for a resumed job: before the first job of its resume
chain started) count as missing, so a resumed re-verification also continues
where it stopped. Verdicts of other versions are never touched.

Verdicts are committed chunk by chunk as they arrive (a killed job loses at most
the chunks in flight) together with the affected samples' overall outcome
(`Sample.passed`, see `chains.overall_outcome`). Verdicts flagged
``details["transient"]`` (a judge request that failed) are counted but not
stored, so the next run asks again.

On Ray (`curation.verification.distributed`) the verifiers run as Ray tasks and this
process, the driver, still writes every verdict itself, in the same transactions: a
task retried after a node died can return its verdicts again, never store them twice.
The job's ``counters["executor"]`` records where it ran (`executors.executor_record`).
"""

from __future__ import annotations

import json
import math
import time
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, bindparam, delete, false, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from curation.data import FAMILIES, SampleRecord
from curation.executors import ExecutorChoice, executor_record
from curation.settings import from_dict
from curation.store.db import session_scope
from curation.store.models import Batch, Job, Sample, Verdict, utcnow
from curation.verification.base import VERIFIERS, RunSettings
from curation.verification.chains import chains_for, overall_outcome
from curation.verification.distributed import open_pipeline
from curation.verification.judge import JudgeConfig, resolve_judge_config
from curation.verification.pipeline import default_jobs
from curation.verification.versions import current_versions

Progress = Callable[..., None]
HIDDEN_STATUSES = ("importing", "discarding")
MAX_REASON_CHARS = 2000
OUTCOME_NAMES = {True: "passed", False: "failed", None: "unknown"}


@dataclass
class VerifyParams:
    batches: list[str] = field(default_factory=list)
    sample_ids: list[int] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    verifiers: list[str] | None = None
    jobs: int | None = None
    reverify: bool = False
    judge: dict[str, Any] | None = None
    chunk_size: int = 256
    executor: str = "local"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        self.executor_choice()
        if not all(isinstance(b, str) and b for b in self.batches):
            raise ValueError("batches must be a list of batch names")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in self.sample_ids):
            raise ValueError("sample_ids must be a list of integers")
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown families {unknown} (known: {', '.join(FAMILIES)})")
        if self.verifiers is not None and (
            not self.verifiers or not all(isinstance(v, str) and v for v in self.verifiers)
        ):
            raise ValueError(
                "verifiers must be a non-empty list of verifier names (or null for the default chains)"
            )
        if self.jobs is not None and (not isinstance(self.jobs, int) or self.jobs < 1):
            raise ValueError("jobs must be a positive integer")
        if not isinstance(self.chunk_size, int) or not 1 <= self.chunk_size <= 10_000:
            raise ValueError("chunk_size must be between 1 and 10000")
        if self.judge is not None:
            JudgeConfig.from_dict(self.judge)

    def executor_choice(self) -> ExecutorChoice:
        """Where the verifiers run; raises ValueError naming an unknown executor."""
        return ExecutorChoice.parse(self.executor, self.ray_address)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VerifyParams:
        return from_dict(cls, data, "verification settings")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """What a run does: the chain per family, the versions written, what was left out and why."""

    chains: dict[str, tuple[str, ...]]
    versions: dict[str, str]
    skipped: dict[str, str]
    judge: Any = None


def plan_verification(params: VerifyParams) -> Plan:
    """Resolve the chains, check each verifier can run here. A verifier named
    explicitly that cannot run is an error; one from a default chain is skipped."""
    judge = resolve_judge_config(params.judge)
    settings = RunSettings(jobs=params.jobs or default_jobs(), judge_config=judge)
    families_of = {name: tuple(VERIFIERS.get(name).families) for name in VERIFIERS}
    chains = chains_for(params.verifiers, families_of, judge_configured=judge is not None)
    if params.families:
        chains = {family: chain for family, chain in chains.items() if family in params.families}
    used = sorted({name for chain in chains.values() for name in chain})
    skipped: dict[str, str] = {}
    for name in used:
        problems = VERIFIERS.get(name).for_run(settings).missing_dependencies()
        if problems:
            if params.verifiers is not None:
                raise ValueError(f"verifier {name!r} cannot run here: {'; '.join(problems)}")
            skipped[name] = "; ".join(problems)
    chains = {family: tuple(n for n in chain if n not in skipped) for family, chain in chains.items()}
    if judge is None and params.verifiers is None and "open" in chains:
        skipped["judge"] = "no judge endpoint configured: open samples are checked by the quality rules only"

    versions = {name: VERIFIERS.get(name).version for name in used if name not in skipped}
    return Plan(chains=chains, versions=versions, skipped=skipped, judge=judge)


# -- selection --------------------------------------------------------------------------------


def _batch_ids(engine: Engine, params: VerifyParams) -> list[int] | None:
    """Visible batch ids named in params; every synthetic batch when nothing is named;
    None when only sample ids restrict the selection."""
    with session_scope(engine, write=False) as session:
        visible = Batch.status.not_in(HIDDEN_STATUSES)
        if params.batches:
            found = dict(
                session.execute(
                    select(Batch.name, Batch.id).where(Batch.name.in_(params.batches), visible)
                ).all()
            )
            missing = [name for name in params.batches if name not in found]
            if missing:
                raise ValueError(f"no batch named {', '.join(map(repr, missing))}")
            return [found[name] for name in params.batches]
        if params.sample_ids:
            return None
        return list(
            session.scalars(select(Batch.id).where(visible, Batch.origin == "synthetic").order_by(Batch.id))
        )


def _selection(engine: Engine, params: VerifyParams) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    batch_ids = _batch_ids(engine, params)
    if batch_ids is not None:
        clauses.append(Sample.batch_id.in_(batch_ids))
    else:
        with session_scope(engine, write=False) as session:
            hidden = list(session.scalars(select(Batch.id).where(Batch.status.in_(HIDDEN_STATUSES))))
        if hidden:
            clauses.append(Sample.batch_id.not_in(hidden))
    if params.sample_ids:
        clauses.append(Sample.id.in_(params.sample_ids))
    if params.families:
        clauses.append(Sample.family.in_(params.families))
    return clauses


def _fresh(name: str, version: str, cutoff: datetime | None) -> ColumnElement[bool]:
    clause = and_(Verdict.verifier == name, Verdict.version == version)
    return and_(clause, Verdict.created_at >= cutoff) if cutoff is not None else clause


def _needs_work(plan: Plan, cutoff: datetime | None) -> ColumnElement[bool]:
    """Samples lacking a (fresh) verdict of at least one verifier of their family's chain."""
    clauses = []
    for name, version in plan.versions.items():
        families = [family for family, chain in plan.chains.items() if name in chain]
        if not families:
            continue
        has = select(Verdict.id).where(Verdict.sample_id == Sample.id, _fresh(name, version, cutoff)).exists()
        clauses.append(and_(Sample.family.in_(families), ~has))
    return or_(*clauses) if clauses else false()


def reverify_cutoff(engine: Engine, job_id: int | None) -> datetime:
    """When the first job of a resume chain was created (now, outside a job)."""
    if job_id is None:
        return utcnow()
    with session_scope(engine, write=False) as session:
        job = session.get(Job, job_id)
        seen = set()
        while job is not None and job.resumed_from is not None and job.id not in seen:
            seen.add(job.id)
            parent = session.get(Job, job.resumed_from)
            if parent is None or parent.kind != job.kind:
                break
            job = parent
        return job.created_at if job is not None else utcnow()


#: What a `SampleRecord` is built from, with the sample's id.
_RECORD_COLUMNS = (
    Sample.id,
    Sample.family,
    Sample.prompt,
    Sample.response,
    Sample.reference,
    Sample.meta,
    Sample.external_id,
)


def _record(row: Any) -> SampleRecord:
    return SampleRecord(
        family=row.family,
        prompt=row.prompt,
        response=row.response or "",
        reference=dict(row.reference or {}),
        metadata=dict(row.meta or {}),
        id=row.external_id,
    )


def _done(session: Any, sample_ids: list[int], plan: Plan, cutoff: datetime | None) -> set[tuple[int, str]]:
    """(sample id, verifier) pairs that already have a (fresh) verdict of the planned version."""
    if not plan.versions:
        return set()
    fresh = or_(*(_fresh(name, version, cutoff) for name, version in plan.versions.items()))
    query = select(Verdict.sample_id, Verdict.verifier).where(Verdict.sample_id.in_(sample_ids), fresh)
    return {(sample_id, name) for sample_id, name in session.execute(query)}


def _selected_ids(engine: Engine, selection: Sequence[ColumnElement[bool]]) -> array[int]:
    """Ids of the selected samples in id order, read once (8 bytes each)."""
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(Sample.id).where(*selection).order_by(Sample.id).execution_options(yield_per=65_536)
        )
        return array("q", (row[0] for row in rows))


def _chunks_with_work(
    engine: Engine,
    selection: Sequence[ColumnElement[bool]],
    needs: ColumnElement[bool],
    plan: Plan,
    cutoff: datetime | None,
    size: int,
) -> Iterator[tuple[list[SampleRecord], list[tuple[str, ...]], list[tuple[int, str]]]]:
    """The samples with work, in id order, `size` looked at a time: (records, the verifiers
    each still needs, (sample id, family) keys).

    The selection's ids are read once and walked `size` at a time by primary key. Asking
    the database for "the next `size` samples with work after id X" instead made SQLite
    search the batch index and sort the whole batch for every chunk (0.76 s per chunk at 1M
    samples, so verification slowed to about 200 samples/s as the batch grew)."""
    ids = _selected_ids(engine, selection)
    for start in range(0, len(ids), size):
        part = ids[start : start + size].tolist()
        with session_scope(engine, write=False) as session:
            rows = session.execute(
                select(*_RECORD_COLUMNS).where(Sample.id.in_(part), needs).order_by(Sample.id)
            ).all()
            if not rows:
                continue
            done = _done(session, [row.id for row in rows], plan, cutoff)
        todo = [
            (row, tuple(name for name in plan.chains.get(row.family, ()) if (row.id, name) not in done))
            for row in rows
        ]
        todo = [(row, names) for row, names in todo if names]
        if todo:
            yield (
                [_record(row) for row, _names in todo],
                [names for _row, names in todo],
                [(row.id, row.family) for row, _names in todo],
            )


# -- writing ----------------------------------------------------------------------------------


def _storable(details: dict[str, Any]) -> dict[str, Any]:
    """`details` as JSON both stores accept; the common, clean case costs one C-level dump."""
    try:
        dumped = json.dumps(details, allow_nan=False)
    except (TypeError, ValueError):
        return _clean(details)
    return _clean(details) if "\\u0000" in dumped else details


def _clean(value: Any, depth: int = 0) -> Any:
    """JSON both stores accept: finite floats, string keys, no NUL characters."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > 20:
        return str(value)[:200]
    if isinstance(value, dict):
        return {str(k).replace("\x00", "\ufffd"): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_clean(v, depth + 1) for v in value]
    return _clean(str(value), depth + 1)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def outcomes_for(
    session: Any, sample_ids: Sequence[int], families: dict[int, str], versions: dict[str, str]
) -> dict[int, bool | None]:
    """Each sample's overall outcome from its verdicts of the current `versions`."""
    verdicts: dict[int, dict[str, bool | None]] = defaultdict(dict)
    for sample_id, name, version, passed in session.execute(
        select(Verdict.sample_id, Verdict.verifier, Verdict.version, Verdict.passed).where(
            Verdict.sample_id.in_(list(sample_ids))
        )
    ):
        if versions.get(name) == version:
            verdicts[sample_id][name] = passed
    return {sid: overall_outcome(families[sid], verdicts.get(sid, {})) for sid in sample_ids}


def write_verdicts(
    engine: Engine,
    sample_ids: Sequence[int],
    families: Sequence[str],
    results: Sequence[dict[str, Any]],
    versions: dict[str, str],
) -> tuple[dict[int, bool | None], int, int]:
    """Store verdicts (replacing any of the same verifier and version) and the samples'
    outcomes, in one transaction. Returns (outcomes, stored, not stored as transient)."""
    now = utcnow()
    rows: list[dict[str, Any]] = []
    by_name: dict[str, list[int]] = defaultdict(list)
    transient = 0
    for sample_id, result in zip(sample_ids, results, strict=True):
        for name, verdict in result.items():
            details = verdict.details if isinstance(verdict.details, dict) else {"value": verdict.details}
            if details.get("transient"):
                transient += 1
                continue
            by_name[name].append(sample_id)
            rows.append(
                {
                    "sample_id": sample_id,
                    "verifier": name,
                    "version": versions[name],
                    "passed": verdict.passed if isinstance(verdict.passed, bool) else None,
                    "score": _number(verdict.score),
                    "reason": _clean(str(verdict.reason or ""))[:MAX_REASON_CHARS],
                    "details": _storable(details),
                    "duration_ms": _number(verdict.duration_ms),
                    "created_at": now,
                }
            )
    family_of = dict(zip(sample_ids, families, strict=True))
    current = current_versions()
    for attempt in range(3):
        try:
            with session_scope(engine) as session:
                for name, ids in by_name.items():
                    session.execute(
                        delete(Verdict).where(
                            Verdict.verifier == name,
                            Verdict.version == versions[name],
                            Verdict.sample_id.in_(ids),
                        )
                    )
                if rows:
                    session.execute(insert(Verdict.__table__), rows)
                outcomes = outcomes_for(session, list(sample_ids), family_of, current)
                _store_outcomes(session, outcomes)
            return outcomes, len(rows), transient
        except IntegrityError:
            # Another job wrote the same (sample, verifier, version) in between: replace it.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _store_outcomes(session: Any, outcomes: dict[int, bool | None]) -> None:
    if outcomes:
        table = Sample.__table__
        session.execute(
            update(table).where(table.c.id == bindparam("sample_id")).values(passed=bindparam("outcome")),
            [{"sample_id": sid, "outcome": passed} for sid, passed in outcomes.items()],
        )


def refresh_outcomes(engine: Engine, batch_ids: Iterable[int] | None = None, chunk: int = 1000) -> int:
    """Recompute `Sample.passed` from the stored verdicts of the current verifier versions
    (e.g. after a verifier's version changed). Returns how many samples changed."""
    current = current_versions()
    changed = 0
    after = 0
    while True:
        with session_scope(engine) as session:
            query = select(Sample.id, Sample.family, Sample.passed).where(Sample.id > after)
            if batch_ids is not None:
                query = query.where(Sample.batch_id.in_(list(batch_ids)))
            rows = session.execute(query.order_by(Sample.id).limit(chunk)).all()
            if not rows:
                return changed
            outcomes = outcomes_for(session, [r.id for r in rows], {r.id: r.family for r in rows}, current)
            diff = {r.id: outcomes[r.id] for r in rows if outcomes[r.id] != r.passed}
            _store_outcomes(session, diff)
            changed += len(diff)
            after = rows[-1].id


# -- the run ----------------------------------------------------------------------------------


@dataclass
class _Tally:
    samples: int = 0
    stored: int = 0
    transient: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: {"passed": 0, "failed": 0, "unknown": 0})
    by_verifier: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(
        self, results: Sequence[dict[str, Any]], outcomes: dict[int, bool | None], stored: int, transient: int
    ) -> None:
        self.samples += len(results)
        self.stored += stored
        self.transient += transient
        for outcome in outcomes.values():
            self.outcomes[OUTCOME_NAMES[outcome]] += 1
        for result in results:
            for name, verdict in result.items():
                counts = self.by_verifier.setdefault(name, {"passed": 0, "failed": 0, "unknown": 0})
                passed = verdict.passed if isinstance(verdict.passed, bool) else None
                counts[OUTCOME_NAMES[passed]] += 1

    def counters(self) -> dict[str, Any]:
        return {**self.outcomes, "verdicts": self.stored, "by_verifier": self.by_verifier}


def run_verification(
    engine: Engine,
    params: VerifyParams | dict[str, Any],
    *,
    progress: Progress | None = None,
    job_id: int | None = None,
) -> dict[str, Any]:
    """Verify the selected samples (only what is missing); returns a summary.

    `progress(done, total, message, counters)` is called after every committed
    chunk (the job's ctx.progress, which raises JobCancelled when asked to stop)."""
    if not isinstance(params, VerifyParams):
        params = VerifyParams.from_dict(params)
    started = time.perf_counter()
    plan = plan_verification(params)
    jobs = params.jobs or default_jobs()
    cutoff = reverify_cutoff(engine, job_id) if params.reverify else None
    selection = _selection(engine, params)
    needs = _needs_work(plan, cutoff)
    with session_scope(engine, write=False) as session:
        total = session.scalar(select(func.count(Sample.id)).where(*selection, needs)) or 0
    tally = _Tally()
    choice = params.executor_choice()
    executor = executor_record(choice)

    def report() -> None:
        if progress is not None:
            message = f"verified {tally.samples:,} of {total:,} samples"
            progress(tally.samples, total, message, {**tally.counters(), "executor": executor})

    report()
    if total:
        with open_pipeline(choice, jobs, judge_config=plan.judge) as (pipeline, executor):
            jobs = pipeline.jobs
            report()
            chunks = _chunks_with_work(engine, selection, needs, plan, cutoff, params.chunk_size)
            for chunk, results in pipeline.in_order(chunks):
                ids = [sample_id for sample_id, _family in chunk.keys]
                families = [family for _id, family in chunk.keys]
                outcomes, stored, transient = write_verdicts(engine, ids, families, results, plan.versions)
                tally.add(results, outcomes, stored, transient)
                report()
    seconds = time.perf_counter() - started
    result = {
        "samples": tally.samples,
        "verdicts": tally.stored,
        "not_stored": tally.transient,
        "outcomes": dict(tally.outcomes),
        "by_verifier": tally.by_verifier,
        "versions": plan.versions,
        "chains": {family: list(chain) for family, chain in plan.chains.items()},
        "skipped_verifiers": plan.skipped,
        "jobs": jobs,
        "executor": executor,
        "reverify": params.reverify,
        "seconds": round(seconds, 3),
        "samples_per_s": round(tally.samples / seconds, 1) if seconds > 0 else None,
    }
    if params.batches:
        result["batches"] = list(params.batches)
    if tally.transient:
        result["note"] = f"{tally.transient} judge verdict(s) not stored (request failed); run again to retry"
    return result


__all__ = [
    "Plan",
    "VerifyParams",
    "current_versions",
    "outcomes_for",
    "plan_verification",
    "refresh_outcomes",
    "reverify_cutoff",
    "run_verification",
    "write_verdicts",
]
