"""Running a generation: create or continue the batch, request only what is missing,
record the outcome. `run_generation` is what the "generate" job, the CLI and the
demo seeding call."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.orm import Session

from curation import aio
from curation.generation.batchapi import LEDGER_KEY, BatchEngine
from curation.generation.build import skipped_slots
from curation.generation.conversation import teacher_for
from curation.generation.cost import mode_prices
from curation.generation.engine import (
    Call,
    GenerationEngine,
    GenerationStopped,
    RunStats,
    cache_key,
    make_request,
)
from curation.generation.extract import consistency
from curation.generation.limiter import ErrorWindow
from curation.generation.params import GenerationParams
from curation.generation.persist import (
    WriteBatch,
    Writer,
    batch_totals,
    create_request_rows,
    finished_slots,
    lookup_cache,
    set_batch_state,
    token_cost,
)
from curation.generation.plan import Plan, PlanItem, build_plan, solve_item
from curation.generation.shard import CallFeed, ShardGroup, shard_count, split_concurrency
from curation.jobs import JobCancelled
from curation.jobs.liveness import refuse_if_busy
from curation.store.db import session_scope
from curation.store.models import Batch, Sample, utcnow
from curation.teachers import Teacher, TeacherConfig, make_teacher

Progress = Callable[[int, int | None, str | None, dict[str, Any] | None], None]
MAX_RUNS_KEPT = 20


class GenerationError(RuntimeError):
    """A failure whose original message had to be scrubbed of a secret."""


def teacher_models(config: TeacherConfig | dict[str, Any], api_key: str | None = None) -> list[str]:
    """ "Test connection": the models the endpoint lists. Raises TeacherError (scrubbed message)."""
    if isinstance(config, dict):
        config = TeacherConfig.from_dict(config)

    async def go() -> list[str]:
        teacher = make_teacher(config, api_key=api_key)
        try:
            return await teacher.list_models()
        finally:
            await teacher.aclose()

    return aio.run(go())


def _contains_secret(exc: BaseException, teacher: Teacher) -> bool:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        text = str(current)
        if teacher.scrub(text) != text:
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def run_generation(
    engine: Engine,
    params: GenerationParams | dict[str, Any],
    *,
    api_key: str | None = None,
    progress: Progress | None = None,
    job_id: int | None = None,
    tick_seconds: float = 1.0,
) -> dict[str, Any]:
    """Generate (or continue generating) the batch named in `params`; returns a summary.

    The API key comes from `api_key` or the environment variable named in the
    teacher config; it is never stored. Raises GenerationStopped when the run stops
    itself (error-rate breaker), JobCancelled when cancelled through `progress`.
    """
    if not isinstance(params, GenerationParams):
        params = GenerationParams.from_dict(params)
    teacher = teacher_for(params, api_key=api_key)
    try:
        return GenerationRun(engine, params, teacher, progress, job_id, tick_seconds).execute()
    except Exception as exc:
        if _contains_secret(exc, teacher):
            raise GenerationError(teacher.scrub(f"{type(exc).__name__}: {exc}")) from None
        raise


def check_can_continue(session: Session, params: GenerationParams) -> None:
    """Raise ValueError when a run of `params` cannot continue the batch it names (if
    that batch exists): one not made by a generation run, one made with other settings,
    or one with provider batches open that only a Batch API run may re-attach to. Checked
    before a generate job is created (so a refused start leaves no job) and again by the run."""
    batch = session.scalar(select(Batch).where(Batch.name == params.batch))
    if batch is None:
        return
    config = batch.generation_config or {}
    if batch.origin != "synthetic" or "fingerprint" not in config:
        raise ValueError(
            f"batch {params.batch!r} exists and was not made by a generation run; choose another name"
        )
    if config["fingerprint"] != params.fingerprint():
        raise ValueError(
            f"batch {params.batch!r} exists with a different generation configuration; "
            "choose a new batch name (or rerun with the original settings to continue it)"
        )
    provider_batches = (batch.stats or {}).get(LEDGER_KEY) or []
    if not params.batch_api and any(entry.get("state") == "open" for entry in provider_batches):
        raise ValueError(
            f"batch {params.batch!r} has provider batches still open at the endpoint's Batch API; "
            "continue it with --batch-api to re-attach to them (sending their requests online would pay "
            "for them twice)"
        )


class GenerationRun:
    """One run of a batch: open or continue it, plan the calls, run the engine (with shard
    processes if worthwhile) and record the outcome; `run_shard` is a shard process's part."""

    def __init__(
        self,
        engine: Engine,
        params: GenerationParams,
        teacher: Teacher,
        progress: Progress | None,
        job_id: int | None,
        tick_seconds: float,
    ) -> None:
        self.engine = engine
        self.params = params
        self.teacher = teacher
        self.progress = progress
        self.job_id = job_id
        self.tick_seconds = tick_seconds
        #: The prices this run pays (the batch prices with the Batch API).
        self.prices = mode_prices(params.prices, params.batch_api)
        self.batch_id = 0
        self.plan: Plan | None = None
        self._own_concurrency: int | None = None
        self.teacher_info: dict[str, Any] = {
            "teacher": teacher.name,
            "teacher_model": teacher.config.model or None,
        }
        if teacher.simulated:
            self.teacher_info = {"teacher": "simulated", "simulated": True}

    # -- batch --

    def _check_no_other_run(self) -> None:
        """Refuse to run next to a live generation of the same batch (two runs would ask
        for the same missing slots); a job whose worker died is reaped, not counted."""
        refuse_if_busy(self.engine, "generate", {"batch": self.params.batch}, exclude=self.job_id)

    def _open_batch(self) -> None:
        params = self.params
        with session_scope(self.engine, write=False) as session:
            check_can_continue(session, params)
            batch = session.scalar(select(Batch).where(Batch.name == params.batch))
            existing = None if batch is None else (batch.id, dict(batch.lineage or {}))
        if existing is not None:
            batch_id, lineage = existing
            self.plan = build_plan(params, self.engine, lineage=lineage)
            self.batch_id = batch_id
            set_batch_state(self.engine, batch_id, status="generating", stop_reason=None)
            return
        self.plan = build_plan(params, self.engine)
        lineage = dict(self.plan.lineage)
        generation = int(lineage.pop("generation", 0) or 0)
        parent = lineage.pop("parent_batch_id", None)
        lineage["teacher"] = "simulated" if self.teacher.simulated else self.teacher.source_label()
        config = {
            "teacher": "simulated" if self.teacher.simulated else self.teacher.name,
            "teacher_label": self.teacher.label,
            "teacher_config": params.teacher.to_dict(),
            "model": "simulated" if self.teacher.simulated else params.teacher.model,
            "family": params.family,
            "mode": params.mode,
            "source": params.source,
            "source_label": self.plan.source_label,
            "template": params.effective_template().to_dict(),
            "levers": params.levers,
            "n": params.n,
            "seed": params.seed,
            "consistency": params.consistency,
            "cache": params.cache,
            "prices": params.prices,
            "fingerprint": params.fingerprint(),
        }
        with session_scope(self.engine) as session:
            batch = Batch(
                name=params.batch,
                origin="synthetic",
                family=params.family,
                source=f"{self.teacher.source_label()}:{self.plan.source_label}"[:500],
                generation_config=config,
                status="generating",
                generation=generation,
                parent_batch_id=parent,
                lineage=lineage,
                stats={},
            )
            session.add(batch)
            session.flush()
            self.batch_id = batch.id

    # -- calls --

    def _calls(
        self,
        items: list[PlanItem],
        candidates: list[int],
        done: set[tuple[int, int]],
        *,
        attach_cache: bool = True,
    ) -> list[Call]:
        calls: list[Call] = []
        split = self.teacher.config.split_candidates
        for item in items:
            missing = [c for c in candidates if (item.index, c) not in done]
            if not missing:
                continue
            groups = [[c] for c in missing] if split else [missing]
            calls.extend(Call(item=item, candidates=group) for group in groups)
        if attach_cache:
            self._attach_cache(calls)
        return calls

    def _attach_cache(self, calls: list[Call]) -> None:
        if not (self.params.cache and calls):
            return
        for call in calls:
            call.key = cache_key(
                self.teacher, make_request(self.teacher, call.item, call.candidates), call.item.index
            )
        hits = lookup_cache(self.engine, [call.key for call in calls])
        for call in calls:
            call.cached = hits.get(call.key)

    def _progress(self, counters: dict[str, Any]) -> None:
        if self.progress is None:
            return
        label = "simulated teacher" if self.teacher.simulated else self.teacher.config.model
        eta = counters.get("eta_seconds")
        message = (
            f"{counters['done']:,}/{counters['slots']:,} done, {counters['failed']:,} failed, "
            f"{counters['retrying']} retrying · {counters['prompt_tokens'] + counters['completion_tokens']:,} tokens"
            f" · ${counters['cost']:.4f}" + (f" · ETA {eta:.0f}s" if eta is not None else "") + f" ({label})"
        )
        self.progress(counters["done"] + counters["failed"], counters["slots"], message, counters)

    def _stats(self) -> RunStats:
        totals = batch_totals(self.engine, self.batch_id, latencies=False)
        cost = token_cost(self.prices, totals.paid_prompt_tokens, totals.paid_completion_tokens)
        return RunStats(
            total_slots=totals.slots,
            base_ok=totals.ok + totals.skipped,
            base_prompt_tokens=totals.prompt_tokens,
            base_completion_tokens=totals.completion_tokens,
            base_cost=cost,
        )

    async def _phase(
        self,
        calls: list[Call],
        stats: RunStats,
        extra: dict[int, dict[str, Any]] | None,
        writes: list[WriteBatch],
        progress: Callable[[dict[str, Any]], None] | None = None,
        peers: ShardGroup | None = None,
        feed: CallFeed | None = None,
    ) -> GenerationEngine:
        """One pass over `calls`; with `peers` (configured shard processes) sharing the
        work, or, in a shard process, with `feed` bringing the calls."""
        writer = Writer(self.engine, self.batch_id).start()
        for item in writes:
            writer.put(item)
        engine_class, batch_options = GenerationEngine, {}
        if self.params.batch_api:
            engine_class = BatchEngine
            batch_options = {
                "store": self.engine,
                "batch_id": self.batch_id,
                "poll_seconds": self.params.batch_poll_seconds,
            }
        gen = engine_class(
            self.teacher,
            writer,
            stats,
            **batch_options,
            max_cost=self.params.max_cost,
            prices=self.prices,
            error_window=ErrorWindow(self.params.error_window, self.params.error_rate_threshold),
            teacher_info=self.teacher_info,
            progress=progress or (self._progress if self.progress else None),
            tick_seconds=self.tick_seconds,
            extra_meta=(lambda item: extra.get(item.index, {})) if extra else None,
            concurrency=self._own_concurrency if peers is not None else None,
            peers=peers,
            feed=feed,
        )
        if peers is not None:
            peers.serve(gen.give_away)
        try:
            await gen.run(calls)
        finally:
            if peers is not None:
                peers.kill()
            await asyncio.to_thread(writer.close)
        if peers is not None:
            stats.process_requests = [stats.requests] + [
                int((peers.finals.get(index) or {}).get("stats", {}).get("requests", 0))
                for index in range(1, len(peers.processes) + 1)
            ]
            for final in peers.finals.values():
                stats.add_shard_report(final.get("stats") or {})
            stats.shards = 1 + len(peers.processes)
            gen.peers = None  # their counts are in `stats` now
        return gen

    def run_shard(
        self, batch_id: int, feed: CallFeed, progress: Callable[[dict[str, Any]], None]
    ) -> tuple[GenerationEngine, RunStats]:
        """The body of a shard process: answer the calls its coordinator hands over
        (item index, candidates, cache key) through `feed`, until there are none left."""
        self.batch_id = batch_id
        with session_scope(self.engine, write=False) as session:
            lineage = dict(session.get(Batch, batch_id).lineage or {})
        self.plan = build_plan(self.params, self.engine, lineage=lineage)
        by_index = {item.index: item for item in self.plan.items}
        feed.make_call = lambda wire: Call(
            item=by_index[int(wire[0])],
            candidates=[int(c) for c in wire[1]],
            key=wire[2] if len(wire) > 2 else None,
        )
        stats = RunStats()

        async def go() -> GenerationEngine:
            try:
                return await self._phase([], stats, None, [], progress=progress, feed=feed)
            finally:
                await self.teacher.aclose()

        return aio.run(go()), stats

    def _phase_two(
        self, done: set[tuple[int, int]]
    ) -> tuple[list[Call], dict[int, dict[str, Any]], list[WriteBatch]]:
        """Write mode with self-consistency: solve each written problem n-1 more times."""
        assert self.plan is not None
        n = self.params.n
        with session_scope(self.engine, write=False) as session:
            rows = session.execute(
                select(Sample.id, Sample.item_index, Sample.prompt, Sample.reference, Sample.meta).where(
                    Sample.batch_id == self.batch_id, Sample.candidate_index == 0
                )
            ).all()
        by_index = {item.index: item for item in self.plan.items}
        items: list[PlanItem] = []
        extra: dict[int, dict[str, Any]] = {}
        writes: list[WriteBatch] = []
        for sample_id, item_index, prompt, reference, meta in rows:
            missing = [c for c in range(1, n) if (item_index, c) not in done]
            if not missing or item_index not in by_index:
                continue
            meta = meta or {}
            if meta.get("parse_error"):
                writes.append(
                    WriteBatch(
                        slots=skipped_slots(item_index, missing, "the written problem could not be parsed")
                    )
                )
                continue
            hints = {"answer": meta.get("simulated_true_answer") or (reference or {}).get("answer")}
            items.append(solve_item(by_index[item_index], prompt, dict(reference or {}), hints))
            extra[item_index] = {"consistency_of": sample_id, "solves_written_problem": True}
        return self._calls(items, list(range(1, n)), done), extra, writes

    def _finalise_consistency(self) -> None:
        if not (self.params.consistency and self.params.family == "math" and self.params.n >= 2):
            return
        with session_scope(self.engine, write=False) as session:
            rows = session.execute(
                select(Sample.id, Sample.item_index, Sample.meta)
                .where(Sample.batch_id == self.batch_id)
                .order_by(Sample.item_index, Sample.candidate_index)
            ).all()
        groups: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        for sample_id, item_index, meta in rows:
            groups.setdefault(item_index, []).append((sample_id, dict(meta or {})))
        updates = []
        for members in groups.values():
            result = consistency([meta.get("extracted_answer") for _, meta in members])
            for sample_id, meta in members:
                if meta.get("consistency") != result:
                    meta["consistency"] = result
                    updates.append({"b_id": sample_id, "v_meta": meta})
        table = Sample.__table__
        statement = update(table).where(table.c.id == bindparam("b_id")).values(metadata=bindparam("v_meta"))
        for start in range(0, len(updates), 1000):
            with session_scope(self.engine) as session:
                session.connection().execute(statement, updates[start : start + 1000])

    # -- the run --

    async def _generate(
        self, calls: list[Call], stats: RunStats, write_consistency: bool, peers: ShardGroup | None
    ) -> GenerationEngine:
        try:
            gen = await self._phase(calls, stats, None, [], peers=peers)
            if write_consistency and not (gen.stop_reason or gen.cancelled):
                done = finished_slots(self.engine, self.batch_id)
                calls2, extra, writes = self._phase_two(done)
                if calls2 or writes:
                    gen = await self._phase(calls2, stats, extra, writes)
            return gen
        finally:
            await self.teacher.aclose()

    def _spawn_shards(self) -> ShardGroup | None:
        """Start the shard processes this run may use, before anything else, so that
        their start-up overlaps the preparation here (see curation.generation.shard)."""
        config = self.teacher.config
        if self.params.batch_api or self.params.max_cost is not None:
            return None  # one process keeps the provider batches, or the spend cap's account
        possible = shard_count(config.processes, config.concurrency, sys.maxsize, self.teacher.simulated)
        return ShardGroup.spawn(possible - 1) if possible > 1 else None

    def _configure_shards(self, spawned: ShardGroup | None, calls: int) -> ShardGroup | None:
        """Configure as many of the spawned shards as `calls` warrant (the rest exit);
        the coordinator keeps the first share of the concurrency."""
        if spawned is None:
            return None
        config = self.teacher.config
        shards = min(
            1 + len(spawned.processes), shard_count(config.processes, config.concurrency, calls, False)
        )
        shares = split_concurrency(config.concurrency, shards)
        self._own_concurrency = shares[0]
        spawned.start(
            [
                {
                    "url": self.engine.url.render_as_string(hide_password=False),
                    "params": self.params.to_dict(),
                    "batch_id": self.batch_id,
                    "concurrency": shares[k],
                    "tick": self.tick_seconds,
                    "api_key": self.teacher._api_key,
                    "parent_pid": os.getpid(),
                }
                for k in range(1, shards)
            ]
        )
        return spawned if shards > 1 else None

    def execute(self) -> dict[str, Any]:
        self._check_no_other_run()
        spawned = self._spawn_shards()
        try:
            return self._execute(spawned)
        finally:
            if spawned is not None:
                spawned.kill()

    def _execute(self, spawned: ShardGroup | None) -> dict[str, Any]:
        self._open_batch()
        assert self.plan is not None
        params = self.params
        n = params.n
        write_consistency = params.mode == "write" and params.consistency and n >= 2
        done = finished_slots(self.engine, self.batch_id)
        first = [0] if write_consistency else list(range(n))
        calls = self._calls(self.plan.items, first, done, attach_cache=False)
        # The shards build their plan while the request rows and cache keys are made here.
        peers = self._configure_shards(spawned, len(calls))
        create_request_rows(
            self.engine, self.batch_id, ((item.index, c) for item in self.plan.items for c in range(n))
        )
        started = utcnow()
        stats = self._stats()
        self._attach_cache(calls)
        if self.progress is not None:
            try:
                self.progress(stats.base_ok, stats.total_slots, f"{len(calls):,} requests to make", None)
            except JobCancelled:
                set_batch_state(self.engine, self.batch_id, status="stopped", stop_reason="cancelled by user")
                raise
        gen: GenerationEngine | None = None
        wall, cpu, children = time.perf_counter(), time.process_time(), os.times()
        try:
            gen = aio.run(self._generate(calls, stats, write_consistency, peers))
        except BaseException as exc:
            reason = f"{type(exc).__name__}: {self.teacher.scrub(str(exc))}"[:1000]
            set_batch_state(self.engine, self.batch_id, status="failed", stop_reason=reason)
            raise
        run_summary = {
            "job_id": self.job_id,
            "started_at": started.isoformat(),
            "finished_at": utcnow().isoformat(),
            "requests": stats.requests,
            "retries": stats.retries,
            "rate_limited": stats.rate_limited,
            "errors_by_kind": dict(stats.errors),
            "slots_ok": stats.slots_ok,
            "slots_failed": stats.slots_failed,
            "slots_cached": stats.slots_cached,
            "seconds": round(max(0.0, (utcnow() - started).total_seconds()), 2),
            "engine_seconds": round(time.perf_counter() - wall, 3),
            "cpu_seconds": round(time.process_time() - cpu, 3),
            # Shard processes' CPU (children that exited during the run).
            "shard_cpu_seconds": round(
                os.times().children_user
                + os.times().children_system
                - children.children_user
                - children.children_system,
                3,
            ),
            "stop_reason": gen.stop_reason if gen else None,
            "max_cost": self.params.max_cost,
            "batch_api": gen.counters().get("batch_api") if gen else None,
            "shards": stats.shards,
            "requests_by_process": stats.process_requests or [stats.requests],
        }
        self._finalise_consistency()
        result = self._record(run_summary, gen)
        if self.progress is not None and gen is not None and not gen.cancelled:
            self._progress_final(gen)
        if gen is not None and gen.cancelled:
            raise JobCancelled()
        if gen is not None and gen.stop_reason:
            raise GenerationStopped(gen.stop_reason)
        return result

    def _progress_final(self, gen: GenerationEngine) -> None:
        counters = gen.counters()
        try:
            self.progress(counters["done"] + counters["failed"], counters["slots"], "finished", counters)  # type: ignore[misc]
        except JobCancelled:
            pass  # a cancel arriving at the very end changes nothing

    def _record(self, run_summary: dict[str, Any], gen: GenerationEngine | None) -> dict[str, Any]:
        totals = batch_totals(self.engine, self.batch_id)
        prices = self.prices
        cost = token_cost(prices, totals.paid_prompt_tokens, totals.paid_completion_tokens)
        if gen is not None and gen.cancelled:
            status, stop_reason = "stopped", "cancelled by user"
        elif gen is not None and gen.capped and gen.stop_reason:
            status, stop_reason = "stopped", gen.stop_reason
        elif gen is not None and gen.stop_reason:
            status, stop_reason = "failed", gen.stop_reason
        else:
            status, stop_reason = "ready", None
        with session_scope(self.engine, write=False) as session:
            previous_runs = list((session.get(Batch, self.batch_id).stats or {}).get("runs", []))
        stats = {
            "teacher": self.teacher_info["teacher"],
            "slots": totals.slots,
            "ok": totals.ok,
            "failed": totals.failed,
            "pending": totals.pending,
            "skipped": totals.skipped,
            "cached": totals.cached,
            "prompt_tokens": totals.prompt_tokens,
            "completion_tokens": totals.completion_tokens,
            "paid_prompt_tokens": totals.paid_prompt_tokens,
            "paid_completion_tokens": totals.paid_completion_tokens,
            "cost": round(cost, 6),
            "prices": prices,
            "latency_ms": totals.latency_ms,
            "failures_by_kind": totals.failures_by_kind,
            "truncated": totals.truncated,
            "parse_errors": totals.parse_errors,
            "stop_reason": stop_reason,
            "runs": (previous_runs + [run_summary])[-MAX_RUNS_KEPT:],
        }
        set_batch_state(self.engine, self.batch_id, status=status, **stats)
        return {
            "batch_id": self.batch_id,
            "batch": self.params.batch,
            "status": status,
            **{
                k: stats[k]
                for k in (
                    "slots",
                    "ok",
                    "failed",
                    "pending",
                    "skipped",
                    "cached",
                    "prompt_tokens",
                    "completion_tokens",
                    "cost",
                    "latency_ms",
                    "failures_by_kind",
                    "truncated",
                    "parse_errors",
                    "stop_reason",
                )
            },
            "requests": run_summary["requests"],
            "run": run_summary,
        }
