"""Generation through the provider's Batch API (`generate --batch-api`).

The calls are written as a JSONL input file (one line per call, `custom_id` =
"ITEM:CANDIDATES"), uploaded to `/v1/files` and run as a provider batch
(`/v1/batches`). The batch is polled with backoff; when it ends, its output file's
answers are stored like online answers (same persistence keys, so exactly once per
(batch, item, candidate)), and its failed and expired requests go into a new
provider batch (failed ones up to the teacher's `max_retries`; a request refused for
good, e.g. a 400, fails its slots).

The provider batches are recorded in `Batch.stats["provider_batches"]` (the ledger)
before and after they are created, and an entry is closed only once its answers are
committed. A resume (`generate --resume`, `resume ID`) re-attaches to the open
entries instead of sending their requests again: one whose batch id was not yet
recorded (killed between creating it and recording it) is found in the provider's
list of batches by its input file.

Under a spend cap, each submitted request's worst-case cost is reserved until its
batch ends (see `GenerationEngine.reserve`); what does not fit waits for a running
batch to end, and when nothing runs and nothing fits, the run stops.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from sqlalchemy import Engine

from curation.generation.build import failed_slots
from curation.generation.engine import Call, GenerationEngine, make_request
from curation.generation.persist import WriteBatch, set_batch_state
from curation.store.db import session_scope
from curation.store.models import Batch, utcnow
from curation.teachers.base import TeacherError

LEDGER_KEY = "provider_batches"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: The most requests OpenAI takes in one batch.
MAX_REQUESTS_PER_BATCH = 50_000
FIRST_POLL_SECONDS = 0.05
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})


def custom_id(call: Call) -> str:
    return f"{call.item.index}:{'.'.join(str(c) for c in call.candidates)}"


def load_ledger(engine: Engine, batch_id: int) -> list[dict[str, Any]]:
    with session_scope(engine, write=False) as session:
        batch = session.get(Batch, batch_id)
        return [dict(entry) for entry in ((batch.stats or {}).get(LEDGER_KEY) or [])] if batch else []


def _status_error(status: int, body: Any) -> TeacherError:
    error = body.get("error") if isinstance(body, dict) else None
    message = str((error or {}).get("message") if isinstance(error, dict) else error or f"HTTP {status}")[
        :500
    ]
    retryable = status >= 500 or status in RETRYABLE_STATUSES
    kind = {401: "auth", 403: "auth", 404: "not_found", 429: "rate_limit"}.get(status)
    kind = kind or ("server_error" if status >= 500 else "bad_request")
    return TeacherError(kind, message, status=status, retryable=retryable)


class BatchEngine(GenerationEngine):
    """The engine of a `--batch-api` run: same accounting and writer as the online one,
    but its calls travel in provider batches."""

    def __init__(
        self,
        *args: Any,
        store: Engine,
        batch_id: int,
        poll_seconds: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.store = store
        self.batch_id = batch_id
        self.poll_seconds = poll_seconds
        self.ledger: list[dict[str, Any]] = []
        self.batch_counts: Counter = Counter()
        self._calls: dict[str, Call] = {}
        self._reservations: dict[str, float] = {}
        self._attempts: Counter = Counter()
        #: Calls to the Batch API that failed in a row.
        self._api_failures = 0

    # -- accounting --

    def counters(self) -> dict[str, Any]:
        counters = super().counters()
        open_entries = [entry for entry in self.ledger if entry["state"] == "open"]
        counters["in_flight"] = sum(len(entry["custom_ids"]) for entry in open_entries)
        counters["batch_api"] = {
            "provider_batches": len(self.ledger),
            "open": len(open_entries),
            **{
                name: self.batch_counts[name]
                for name in ("submitted", "resubmitted", "expired", "failed", "reattached")
            },
        }
        return counters

    def _save_ledger(self) -> None:
        set_batch_state(self.store, self.batch_id, **{LEDGER_KEY: self.ledger})

    # -- the run --

    async def run(self, calls: list[Call]) -> None:
        ticker = asyncio.create_task(self._ticker())
        try:
            for call in calls:
                if call.cached is not None:
                    await self._process(call)
            live = [call for call in calls if call.cached is None]
            await self._run_batches(live)
            if self.capped and self.stop_reason is None:
                self.stop_reason = self.cap_reason()
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)

    async def _run_batches(self, live: list[Call]) -> None:
        self._calls = {custom_id(call): call for call in live}
        self.ledger = await asyncio.to_thread(load_ledger, self.store, self.batch_id)
        covered: set[str] = set()
        for entry in self.ledger:
            if entry["state"] == "open":
                self.batch_counts["reattached"] += 1
                covered.update(entry["custom_ids"])
                self._reserve_entry(entry)
        waiting = [call for cid, call in self._calls.items() if cid not in covered]
        delay = FIRST_POLL_SECONDS
        while not self._stop.is_set():
            if waiting:
                waiting = await self._submit(waiting)
            if not any(entry["state"] == "open" for entry in self.ledger):
                if waiting and not self.capped:
                    await self._wait(delay)  # an upload failed: try again
                    delay = min(delay * 2, self.poll_seconds)
                    continue
                return
            await self._wait(delay)
            delay = min(delay * 2, self.poll_seconds)
            for entry in [entry for entry in self.ledger if entry["state"] == "open"]:
                again = await self._poll(entry)
                if again is not None:
                    waiting.extend(again)
                    delay = FIRST_POLL_SECONDS

    async def _wait(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def _failure(self, error: TeacherError) -> None:
        """Count a failed call to the Batch API (upload, create, poll, download); stop the run
        if it is fatal or keeps failing (the open provider batches stay recorded for a resume)."""
        self.stats.errors[error.kind] += 1
        self._api_failures += 1
        if not error.retryable or self._api_failures > max(3, self.config.max_retries):
            self.stop(f"stopped: the Batch API failed {self._api_failures} times in a row; last: {error}")

    # -- submitting --

    def _reserve_entry(self, entry: dict[str, Any]) -> None:
        """Reserve the worst-case cost of an open provider batch found on resume."""
        for cid in entry["custom_ids"]:
            call = self._call_for(cid)
            if call is not None and self.max_cost is not None:
                worst = self.reserve(call.item.messages, len(call.candidates)) or 0.0
                self.capped = False  # what runs already is paid for whatever the cap says
                self._reservations[cid] = worst

    def _call_for(self, cid: str) -> Call | None:
        """The call a custom_id stands for, if its slots are still missing in this run."""
        return self._calls.get(cid)

    async def _submit(self, waiting: list[Call]) -> list[Call]:
        """Send what fits under the cap as one provider batch; returns what still waits."""
        chosen: list[Call] = []
        for call in waiting[:MAX_REQUESTS_PER_BATCH]:
            reservation = self.reserve(call.item.messages, len(call.candidates))
            if reservation is None:
                if any(entry["state"] == "open" for entry in self.ledger):
                    self.capped = False  # a running batch may leave room when it ends
                break
            self._reservations[custom_id(call)] = reservation
            chosen.append(call)
        if not chosen:
            return waiting
        lines = [
            self.teacher.batch_line(custom_id(call), make_request(self.teacher, call.item, call.candidates))
            for call in chosen
        ]
        try:
            file_id = await self.teacher.upload_batch_input(("\n".join(lines) + "\n").encode())
        except TeacherError as error:
            self._release_calls(chosen)
            self._failure(error)
            return waiting
        entry = {
            "input_file_id": file_id,
            "id": None,
            "state": "open",
            "custom_ids": [custom_id(call) for call in chosen],
            "submitted_at": utcnow().isoformat(),
        }
        self.ledger.append(entry)
        self._api_failures = 0
        await asyncio.to_thread(self._save_ledger)
        self.batch_counts["submitted"] += len(chosen)
        self.batch_counts["resubmitted"] += sum(1 for call in chosen if self._attempts[custom_id(call)])
        await self._create(entry)
        return waiting[len(chosen) :]

    async def _create(self, entry: dict[str, Any]) -> None:
        """Create the provider batch of a recorded input file (or find the one a killed run
        created from it) and record its id."""
        try:
            for batch in await self.teacher.list_batches():
                if batch.get("input_file_id") == entry["input_file_id"]:
                    entry["id"] = batch["id"]
                    break
            else:
                batch = await self.teacher.create_batch(
                    entry["input_file_id"], {"assay_batch_id": str(self.batch_id)}
                )
                entry["id"] = batch["id"]
        except TeacherError as error:
            self._failure(error)  # the entry stays open without an id: the next poll tries again
            return
        await asyncio.to_thread(self._save_ledger)

    def _release_calls(self, calls: list[Call]) -> None:
        for call in calls:
            self.release(self._reservations.pop(custom_id(call), 0.0))

    # -- polling and harvesting --

    async def _poll(self, entry: dict[str, Any]) -> list[Call] | None:
        """Check one open provider batch; once it has ended, store its answers and
        return its calls to send again (None while it runs)."""
        if entry["id"] is None:
            await self._create(entry)
            return None
        try:
            batch = await self.teacher.retrieve_batch(entry["id"])
        except TeacherError as error:
            self._failure(error)
            return None
        self._api_failures = 0
        if batch.get("status") not in TERMINAL:
            return None
        try:
            answered = await self._read_file(batch.get("output_file_id"))
            errored = await self._read_file(batch.get("error_file_id"))
        except TeacherError as error:
            self._failure(error)
            return None
        again = self._harvest(entry, batch, answered + errored)
        await self._committed()
        if self.writer.error is not None:
            return None  # the ticker stops the run; the entry stays open for the resume
        entry["state"] = "closed"
        entry["status"] = batch.get("status")
        entry["requests"] = len(entry.pop("custom_ids"))
        await asyncio.to_thread(self._save_ledger)
        return again

    async def _read_file(self, file_id: str | None) -> list[dict[str, Any]]:
        if not file_id:
            return []
        content = await self.teacher.file_content(file_id)
        return [json.loads(line) for line in content.splitlines() if line.strip()]

    def _harvest(
        self, entry: dict[str, Any], batch: dict[str, Any], lines: list[dict[str, Any]]
    ) -> list[Call]:
        """Store the answers of an ended provider batch; the calls to send again."""
        again: list[Call] = []
        seen: set[str] = set()
        for line in lines:
            cid = str(line.get("custom_id"))
            call = self._call_for(cid)
            if call is None or cid in seen:
                continue  # answered earlier (its answer was committed before a kill), or not ours
            seen.add(cid)
            self.release(self._reservations.pop(cid, 0.0))
            self._attempts[cid] += 1
            self.stats.requests += 1
            if not self._store_line(call, line):
                again.append(call)
        for cid in entry["custom_ids"]:
            call = self._call_for(cid)
            if call is not None and cid not in seen:  # neither answered nor failed: a batch that failed whole
                self.release(self._reservations.pop(cid, 0.0))
                self._attempts[cid] += 1
                self.batch_counts["failed"] += 1
                reason = f"the provider batch ended {batch.get('status')} without this request"
                if not self._fail_for_good(call, TeacherError("server_error", reason, retryable=True)):
                    again.append(call)
        return again

    def _store_line(self, call: Call, line: dict[str, Any]) -> bool:
        """Store one line of the output or error file; False if its request is to be sent again."""
        cid = custom_id(call)
        error_info = line.get("error") or {}
        response = line.get("response") or {}
        if error_info.get("code") == "batch_expired" or (not response and error_info):
            self.batch_counts["expired" if error_info.get("code") == "batch_expired" else "failed"] += 1
            return False
        status = int(response.get("status_code") or 0)
        error: TeacherError
        if status == 200:
            try:
                completion = self.teacher.completion_from_body(response.get("body"), len(call.candidates))
            except TeacherError as exc:
                error = exc
            else:
                self._calls.pop(cid, None)
                self._emit_success(
                    call,
                    completion,
                    cached=False,
                    attempts=self._attempts[cid],
                    latency_ms=None,
                    last_error=None,
                )
                return True
        else:
            error = _status_error(status, response.get("body"))
        self.batch_counts["failed"] += 1
        self.stats.errors[error.kind] += 1
        return self._fail_for_good(call, error)

    def _fail_for_good(self, call: Call, error: TeacherError) -> bool:
        """Record the call's slots as failed if `error` is final or its retries are used up;
        False if it is to be sent again."""
        cid = custom_id(call)
        if error.retryable and self._attempts[cid] <= self.config.max_retries:
            return False
        self._calls.pop(cid, None)
        self.stats.slots_failed += len(call.candidates)
        self.writer.put(
            WriteBatch(slots=failed_slots(call.item, call.candidates, error, self._attempts[cid]))
        )
        return True

    async def _committed(self) -> None:
        """Wait until the writer has committed everything handed to it so far (an entry of
        the ledger is closed only then, so a kill never loses answers that were paid for):
        a marker goes through its queue, and the flush that took the marker must end."""
        marked: list[int] = []

        def mark() -> list:
            marked.append(self.writer.flushes)
            return []

        self.writer.put(WriteBatch(slots=[], build=mark))
        while not marked or self.writer.flushes <= marked[0]:
            if self.writer.error is not None:
                return
            await asyncio.sleep(0.02)
