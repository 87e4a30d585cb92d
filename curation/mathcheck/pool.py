"""Worker processes for the math check, with a hard wall-clock limit per sample.

math-verify's timeouts use ``signal.alarm``: they work only in a process's main
thread, and cannot interrupt a long C-level computation (sympy computing
``9^{9^9}`` exactly, say). So every check runs in a worker process
(`curation.mathcheck.worker`, started with `subprocess`, not `multiprocessing`,
so it does not depend on the caller's start method, threads or ``__main__``),
in that worker's main thread, where math-verify's own timeouts apply; and the
parent kills and replaces a worker that is still busy with one sample after
``hard_timeout`` seconds. That sample gets ``passed=None, reason="timeout"``;
the samples queued behind it are sent again to a fresh worker.

A pool is thread-safe (one batch at a time; callers wait on a lock), so it can be
used from any thread of the caller, e.g. a Streamlit script thread.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from curation.data import SampleRecord, Verdict
from curation.mathcheck.config import MathCheckConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen[bytes]
    stderr: IO[bytes]
    started_at: float
    ready: bool = False
    inflight: deque[int] = field(default_factory=deque)
    head_since: float = 0.0
    rbuf: bytearray = field(default_factory=bytearray)
    wbuf: bytearray = field(default_factory=bytearray)

    @property
    def rfd(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    @property
    def wfd(self) -> int:
        assert self.proc.stdin is not None
        return self.proc.stdin.fileno()

    def stderr_tail(self, limit: int = 2000) -> str:
        try:
            self.stderr.seek(0)
            return self.stderr.read().decode("utf-8", "replace")[-limit:]
        except (OSError, ValueError):
            return ""


class WorkerStartError(RuntimeError):
    """A worker process died or hung before it was ready."""


class MathVerifyPool:
    """A fixed number of math-check worker processes.

    ``max_inflight`` requests are queued per worker so it never waits for the
    parent; the hard limit of a queued request starts only when the one before
    it has been answered.
    """

    def __init__(
        self,
        jobs: int = 2,
        config: MathCheckConfig | None = None,
        *,
        max_inflight: int = 4,
        startup_timeout: float = 120.0,
    ) -> None:
        if jobs < 1:
            raise ValueError("jobs must be >= 1")
        self.jobs = jobs
        self.config = config or MathCheckConfig()
        self.max_inflight = max(1, max_inflight)
        self.startup_timeout = startup_timeout
        self.stats = {"started": 0, "timeouts": 0, "crashes": 0}
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    # lifecycle -----------------------------------------------------------------

    def __enter__(self) -> MathVerifyPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the workers and wait until all are warmed up."""
        with self._lock:
            self._ensure_workers()
            self._wait_ready()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for worker in self._workers:
                self._stop(worker)
            self._workers.clear()

    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (for monitoring)."""
        return [w.proc.pid for w in self._workers]

    def _spawn(self) -> _Worker:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        stderr = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            [sys.executable, "-m", "curation.mathcheck.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            start_new_session=True,
        )
        worker = _Worker(proc=proc, stderr=stderr, started_at=time.monotonic())
        worker.wbuf += (json.dumps({"config": self.config.to_dict()}) + "\n").encode()
        os.set_blocking(worker.wfd, False)
        self.stats["started"] += 1
        return worker

    def _stop(self, worker: _Worker) -> None:
        try:
            worker.proc.kill()
        except OSError:
            pass
        worker.proc.wait()
        for stream in (worker.proc.stdin, worker.proc.stdout, worker.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def _ensure_workers(self) -> None:
        if self._closed:
            raise RuntimeError("pool is closed")
        for worker in [w for w in self._workers if w.proc.poll() is not None]:
            self._workers.remove(worker)
            self._stop(worker)
        while len(self._workers) < self.jobs:
            self._workers.append(self._spawn())

    def _wait_ready(self) -> None:
        self._loop([], [], [])

    # running -------------------------------------------------------------------

    def run(
        self, requests: Sequence[dict[str, Any]], limits: Sequence[float] | None = None
    ) -> list[dict[str, Any]]:
        """Send requests (``{"kind", "args"}``) to the workers; one reply dict per request,
        in order. A reply is ``{"result": {...}}``, ``{"error": "..."}`` or
        ``{"timeout": seconds}``."""
        if limits is None:
            limits = [self.config.hard_timeout] * len(requests)
        results: list[dict[str, Any] | None] = [None] * len(requests)
        with self._lock:
            self._ensure_workers()
            self._loop(list(requests), list(limits), results)
        return [r if r is not None else {"error": "no reply"} for r in results]

    def _loop(
        self, requests: list[dict[str, Any]], limits: list[float], results: list[dict[str, Any] | None]
    ) -> None:
        pending = deque(range(len(requests)))
        remaining = len(requests)
        crashes: dict[int, int] = {}
        selector = selectors.DefaultSelector()
        for worker in self._workers:
            selector.register(worker.rfd, selectors.EVENT_READ, worker)
        try:
            while remaining or not all(w.ready for w in self._workers):
                now = time.monotonic()
                for worker in self._workers:
                    while worker.ready and pending and len(worker.inflight) < self.max_inflight:
                        idx = pending.popleft()
                        if not worker.inflight:
                            worker.head_since = now
                        worker.inflight.append(idx)
                        message = {"id": idx, "kind": requests[idx]["kind"], "args": requests[idx]["args"]}
                        worker.wbuf += (json.dumps(message) + "\n").encode()
                unflushed = self._flush_all()
                wait = self._next_deadline(limits, now) - now
                wait = min(max(wait, 0.0), 0.005 if unflushed else 0.5)
                for key, _ in selector.select(wait):
                    worker = key.data
                    if worker not in self._workers:
                        continue
                    replies, alive = self._read(worker)
                    for reply in replies:
                        if "ready" in reply:
                            worker.ready = True
                            continue
                        idx = worker.inflight.popleft() if worker.inflight else None
                        if idx is None or reply.get("id") != idx:
                            alive = False
                            if idx is not None:
                                worker.inflight.appendleft(idx)
                            break
                        results[idx] = reply
                        remaining -= 1
                        worker.head_since = time.monotonic()
                    if not alive:
                        remaining -= self._replace(worker, selector, pending, results, crashes, None)
                now = time.monotonic()
                for worker in list(self._workers):
                    if worker.ready and worker.inflight:
                        limit = limits[worker.inflight[0]]
                        if now - worker.head_since > limit:
                            remaining -= self._replace(worker, selector, pending, results, crashes, limit)
                    elif not worker.ready and now - worker.started_at > self.startup_timeout:
                        tail = worker.stderr_tail()
                        raise WorkerStartError(f"math worker not ready after {self.startup_timeout}s: {tail}")
        finally:
            selector.close()
            # Left early (an error, an interrupt): workers still busy with this batch are
            # dropped, so no stale reply can reach the next one.
            for worker in [w for w in self._workers if w.inflight]:
                self._workers.remove(worker)
                self._stop(worker)

    def _next_deadline(self, limits: list[float], now: float) -> float:
        deadlines = [w.head_since + limits[w.inflight[0]] for w in self._workers if w.ready and w.inflight]
        deadlines += [w.started_at + self.startup_timeout for w in self._workers if not w.ready]
        return min(deadlines, default=now + 0.5)

    def _flush_all(self) -> bool:
        unflushed = False
        for worker in self._workers:
            if worker.wbuf:
                try:
                    sent = os.write(worker.wfd, worker.wbuf)
                    del worker.wbuf[:sent]
                except BlockingIOError:
                    pass
                except (BrokenPipeError, OSError):
                    worker.wbuf.clear()
                unflushed = unflushed or bool(worker.wbuf)
        return unflushed

    def _read(self, worker: _Worker) -> tuple[list[dict[str, Any]], bool]:
        try:
            data = os.read(worker.rfd, 1 << 16)
        except OSError:
            data = b""
        if not data:
            return [], False
        worker.rbuf += data
        replies = []
        while (end := worker.rbuf.find(b"\n")) >= 0:
            line = bytes(worker.rbuf[:end])
            del worker.rbuf[: end + 1]
            if line.strip():
                try:
                    replies.append(json.loads(line))
                except json.JSONDecodeError:
                    return replies, False
        return replies, True

    def _replace(
        self,
        worker: _Worker,
        selector: selectors.BaseSelector,
        pending: deque[int],
        results: list[dict[str, Any] | None],
        crashes: dict[int, int],
        timed_out_after: float | None,
    ) -> int:
        """Kill `worker`, requeue its queued requests and start a new worker. The current
        request fails on a timeout (a hang is not retried), and on a crash only if it is
        the second crash with that request (the first may have been an outside kill).
        Returns how many requests got their final reply here."""
        was_ready = worker.ready
        code = worker.proc.poll()
        selector.unregister(worker.rfd)
        self._workers.remove(worker)
        self._stop(worker)
        if not was_ready:
            raise WorkerStartError(f"math worker died while starting: {worker.stderr_tail()}")
        finished = 0
        if worker.inflight:
            head = worker.inflight.popleft()
            pending.extendleft(reversed(worker.inflight))
            if timed_out_after is not None:
                results[head] = {"timeout": timed_out_after}
                self.stats["timeouts"] += 1
                finished = 1
            else:
                self.stats["crashes"] += 1
                crashes[head] = crashes.get(head, 0) + 1
                if crashes[head] >= 2:
                    results[head] = {"error": f"worker crashed (exit code {code})"}
                    finished = 1
                else:
                    pending.appendleft(head)
        fresh = self._spawn()
        self._workers.append(fresh)
        selector.register(fresh.rfd, selectors.EVENT_READ, fresh)
        return finished

    # verdicts ------------------------------------------------------------------

    def verify_many(self, samples: Sequence[SampleRecord]) -> list[Verdict]:
        """One verdict per sample, in order; see `curation.verification.math`."""

        verdicts: list[Verdict | None] = [None] * len(samples)
        requests, where = [], []
        for i, sample in enumerate(samples):
            reference = (sample.reference or {}).get("answer")
            if reference is None or not str(reference).strip():
                verdicts[i] = Verdict(None, None, "no reference answer", {"reference": reference}, 0.0)
                continue
            requests.append(
                {"kind": "check", "args": {"response": sample.response or "", "reference": str(reference)}}
            )
            where.append(i)
        for i, reply in zip(where, self.run(requests), strict=True):
            verdicts[i] = reply_to_verdict(reply)
        return [v for v in verdicts if v is not None]

    def cluster(self, responses: Sequence[str]) -> dict[str, Any]:
        """Cluster responses by equivalent final answers (one request, so one worker)."""
        limit = self.config.hard_timeout * (1 + len(responses))
        reply = self.run([{"kind": "cluster", "args": {"responses": list(responses)}}], [limit])[0]
        if "result" in reply:
            return reply["result"]
        raise RuntimeError(f"clustering failed: {reply}")


def reply_to_verdict(reply: dict[str, Any]) -> Verdict:

    if "result" in reply:
        r = reply["result"]
        return Verdict(r["passed"], r["score"], r["reason"], r["details"], r.get("duration_ms"))
    if "timeout" in reply:
        limit = reply["timeout"]
        return Verdict(None, None, "timeout", {"stage": "hard limit", "limit_s": limit}, limit * 1000)
    return Verdict(None, None, f"error: {reply.get('error', 'unknown')}", {})


_SHARED: dict[MathCheckConfig, MathVerifyPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(config: MathCheckConfig | None = None) -> MathVerifyPool:
    """A process-wide single-worker pool per config, started on first use, closed at exit."""
    config = config or MathCheckConfig()
    with _SHARED_LOCK:
        pool = _SHARED.get(config)
        if pool is None or pool._closed:
            pool = MathVerifyPool(jobs=1, config=config)
            _SHARED[config] = pool
        return pool


@atexit.register
def _close_shared() -> None:
    for pool in list(_SHARED.values()):
        pool.close()
    _SHARED.clear()
