"""Shard processes: one run spread over several processes for high concurrency.

Why: the OpenAI client costs roughly half a millisecond of CPU per request, so
one Python process tops out below ~2,000 requests/s however fast the endpoint
is. For high concurrency against a real endpoint the run spreads its calls over
the coordinating process and ``python -m curation.generation.shard_child`` children.

* The children are started first thing in a run (`ShardGroup.spawn`), so their
  imports and their rebuild of the (deterministic) plan overlap the coordinator's
  own preparation (plan, request rows, cache lookup) instead of delaying the first
  requests. Children that turn out not to be needed (few calls left) are told to exit.
* Work is shared, not split up front: a child asks its coordinator for a chunk of
  calls whenever its queue runs low (``want`` on stdout, ``calls`` on stdin), and
  the coordinator hands them from the far end of its own queue. A child that
  started late or runs slower simply takes fewer, so all processes finish together.
* Each child runs its own engine, limiter and writer against the same store (the
  unique slot constraints keep everything exactly once) and reports counters as
  JSON lines on stdout. The coordinator merges them for progress, forwards a stop
  (cancel, breaker) as a line on the child's stdin, and a child whose coordinator
  died exits at once. The API key goes to the child through its stdin, never its
  command line or environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from curation.config import PROJECT_ROOT

#: Counters that add up across shards.
SUMMED = (
    "done",
    "failed",
    "retrying",
    "retries",
    "rate_limited",
    "cached",
    "requests",
    "in_flight",
    "concurrency",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "truncated",
    "parse_errors",
)
STOP_GRACE_SECONDS = 60.0
#: Calls a run must have (at least) before the automatic setting spreads it.
MIN_CALLS_TO_SHARD = 2000
#: Total concurrency from which the automatic setting spreads a run.
MIN_CONCURRENCY_TO_SHARD = 128

#: (item index, candidate indices, cache key or None): a call as it crosses a pipe.
WireCall = list[Any]


class StopRequested(Exception):
    """Raised from a shard's progress callback when its coordinator asks it to stop."""


def shard_count(requested: int, concurrency: int, calls: int, simulated: bool) -> int:
    """How many processes to use: `requested` if positive, else 2 for high concurrency
    on a multi-core machine (never for the simulated teacher, which needs no network)."""
    if simulated or calls < 2:
        return 1
    cpus = os.cpu_count() or 1
    if requested > 0:
        return max(1, min(requested, cpus, calls, concurrency))
    return 2 if concurrency >= MIN_CONCURRENCY_TO_SHARD and cpus >= 2 and calls >= MIN_CALLS_TO_SHARD else 1


def split_concurrency(total: int, shards: int) -> list[int]:
    base, extra = divmod(total, shards)
    return [max(1, base + (1 if k < extra else 0)) for k in range(shards)]


def merge_counters(own: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    merged = dict(own)
    failures = dict(own.get("failures") or {})
    for other in others:
        for key in SUMMED:
            if key in other and key in merged and merged[key] is not None:
                merged[key] = merged[key] + other[key]
        for kind, count in (other.get("failures") or {}).items():
            failures[kind] = failures.get(kind, 0) + count
    merged["failures"] = failures
    if "cost" in merged:
        merged["cost"] = round(merged["cost"], 6)
    merged["pending"] = max(0, merged.get("slots", 0) - merged.get("done", 0) - merged.get("failed", 0))
    merged["shards"] = 1 + len(others)
    return merged


class ShardGroup:
    """The coordinator's view of its child shards.

    Each child has a reader thread: it answers the child's requests for calls
    straight from the coordinator's queue (deque pops are atomic) and keeps its
    latest counters, so the coordinator's event loop does none of this work."""

    def __init__(self, processes: list[subprocess.Popen]) -> None:
        self.processes = processes
        self.latest: dict[int, dict[str, Any]] = {}
        self.finals: dict[int, dict[str, Any]] = {}
        self.errors: list[str] = []
        self._readers: list[threading.Thread] = []
        self._released: list[subprocess.Popen] = []
        # stdin of a child is written by its reader thread (calls) and by the event loop (stop).
        self._write_locks = {process: threading.Lock() for process in processes}
        self._take: Callable[[int], list[WireCall]] = lambda count: []
        self._serving = threading.Event()
        self._stopping = False

    @classmethod
    def spawn(cls, count: int) -> ShardGroup:
        """Start `count` children; they import and then wait for their configuration."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "curation.generation.shard_child"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=str(PROJECT_ROOT),
                env=env,
            )
            for _ in range(count)
        ]
        return cls(processes)

    def start(self, configs: list[dict[str, Any]]) -> None:
        """Configure the first len(configs) children; the rest are told to exit. A
        configured child builds its plan, then asks for calls (see `serve`)."""
        used, unused = self.processes[: len(configs)], self.processes[len(configs) :]
        for process in unused:
            self._send(process, {"type": "end"}, close=True)
        self._released.extend(unused)
        self.processes = used
        for index, (process, config) in enumerate(zip(used, configs, strict=True), start=1):
            self._send(process, {"type": "config", **config})
            reader = threading.Thread(
                target=self._read, args=(index, process), daemon=True, name=f"shard-{index}"
            )
            reader.start()
            self._readers.append(reader)

    def serve(self, take: Callable[[int], list[WireCall]]) -> None:
        """Answer the children's requests for calls with `take(count)` from now on
        (requests that came earlier wait for this)."""
        self._take = take
        self._serving.set()

    def _send(self, process: subprocess.Popen, message: dict[str, Any], *, close: bool = False) -> None:
        if process.stdin is None or process.stdin.closed:
            return
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        try:
            with self._write_locks[process]:
                process.stdin.write(data)
                process.stdin.flush()
                if close:
                    process.stdin.close()
        except (OSError, ValueError):
            pass

    def _read(self, index: int, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            kind = message.get("type")
            if kind == "want":
                self._serving.wait()
                calls = [] if self._stopping else self._take(int(message.get("count") or 1))
                self._send(process, {"type": "calls", "calls": calls, "end": not calls})
            elif kind == "counters":
                self.latest[index] = message["counters"]
            elif kind == "final":
                self.finals[index] = message
                self.latest[index] = message.get("counters") or self.latest.get(index, {})
            elif kind == "error":
                self.errors.append(f"shard {index}: {message.get('message', 'failed')}")
        code = process.wait()
        if index not in self.finals and not any(e.startswith(f"shard {index}:") for e in self.errors):
            self.errors.append(f"shard {index}: process exited with code {code} before finishing")

    @property
    def finished(self) -> bool:
        return not any(reader.is_alive() for reader in self._readers)

    def stop_reason(self) -> str | None:
        if self.errors:
            return "stopped: " + "; ".join(self.errors)[:800]
        for final in self.finals.values():
            if final.get("stop_reason"):
                return final["stop_reason"]
        return None

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for process in self.processes:
            if process.poll() is None:
                self._send(process, {"type": "stop"})

    async def wait(self) -> None:
        """Until every configured child has exited (at most the grace period once stopping)."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while not self.finished:
            if self._stopping and time.monotonic() > deadline:
                self.kill()
            await asyncio.sleep(0.02)
        self._reap()

    def kill(self) -> None:
        self._stopping = True
        self._serving.set()
        for process in self.processes + self._released:
            if process.poll() is None:
                process.kill()
        self._reap()

    def _reap(self) -> None:
        """Wait for every child that has exited or was killed, and close its pipes."""
        for process in self.processes + self._released:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                continue  # still running (a configured child, not stopped yet)
            for pipe in (process.stdin, process.stdout):
                if pipe is not None and not pipe.closed and (process in self._released or self.finished):
                    try:
                        pipe.close()
                    except OSError:
                        pass

    def counters(self) -> list[dict[str, Any]]:
        return list(self.latest.values())


class CallFeed:
    """A shard's supply of calls: when its queue runs low it asks the coordinator for
    another chunk (one request outstanding at a time); the coordinator's answer is
    delivered on the event loop. An empty answer means there is no more work."""

    def __init__(self, ask: Callable[[int], None], chunk: int) -> None:
        self._ask = ask
        self.make_call: Callable[[WireCall], Any] = lambda call: call
        self.chunk = max(1, chunk)
        self.ended = False
        self._asked = False
        self._queue: deque[Any] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrived: asyncio.Event | None = None

    def bind(self, queue: deque[Any]) -> None:
        """Feed `queue` (the engine's), from the running event loop. Calls are only
        asked for from then on, so every delivery finds the loop set."""
        self._queue = queue
        self._loop = asyncio.get_running_loop()
        self._arrived = asyncio.Event()

    def top_up(self) -> None:
        if not self._asked and not self.ended and len(self._queue) < self.chunk:
            self._asked = True
            self._ask(self.chunk)

    async def wait(self) -> bool:
        """Until the queue has calls (True) or the coordinator has no more (False)."""
        while not self._queue and not self.ended:
            self.top_up()
            assert self._arrived is not None
            await self._arrived.wait()
        return bool(self._queue)

    def deliver_threadsafe(self, calls: list[WireCall], end: bool) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._deliver, calls, end)

    def _deliver(self, calls: list[WireCall], end: bool) -> None:
        self._queue.extend(self.make_call(call) for call in calls)
        self._asked = False
        if end or not calls:
            self.ended = True
        arrived, self._arrived = self._arrived, asyncio.Event()
        if arrived is not None:
            arrived.set()
