"""Shard processes: one run spread over several processes for high concurrency.

Why: the OpenAI client costs roughly half a millisecond of CPU per request, so
one Python process tops out below ~2,000 requests/s however fast the endpoint
is. For high concurrency against a real endpoint the run splits its calls
round-robin: the coordinating process keeps one share and starts
``python -m curation.generation.shard`` children for the others. Each child
rebuilds the (deterministic) plan, runs its own engine, limiter and writer
against the same store (the unique slot constraints keep everything exactly
once) and reports counters as JSON lines on stdout. The coordinator merges them
for progress, forwards a stop (cancel, breaker) as a line on the child's stdin,
and a child whose coordinator died exits at its next tick. The API key goes to
the child through its stdin, never its command line or environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from typing import Any

from curation.config import PROJECT_ROOT

#: Counters that add up across shards.
SUMMED = (
    "done", "failed", "retrying", "retries", "rate_limited", "cached", "requests", "in_flight",
    "concurrency", "prompt_tokens", "completion_tokens", "cost", "truncated", "parse_errors",
)
STOP_GRACE_SECONDS = 60.0


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
    return 2 if concurrency >= 128 and cpus >= 2 and calls >= 2000 else 1


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
    """The coordinator's view of its child shards."""

    def __init__(self) -> None:
        self.processes: list[asyncio.subprocess.Process] = []
        self.latest: dict[int, dict[str, Any]] = {}
        self.finals: dict[int, dict[str, Any]] = {}
        self.errors: list[str] = []
        self._readers: list[asyncio.Task] = []
        self._stopping = False

    async def start(self, configs: list[dict[str, Any]]) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        for index, config in enumerate(configs, start=1):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "curation.generation.shard",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(PROJECT_ROOT), env=env,
            )
            assert process.stdin is not None
            process.stdin.write((json.dumps(config) + "\n").encode())
            await process.stdin.drain()
            self.processes.append(process)
            self._readers.append(asyncio.create_task(self._read(index, process)))

    async def _read(self, index: int, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            kind = message.get("type")
            if kind == "counters":
                self.latest[index] = message["counters"]
            elif kind == "final":
                self.finals[index] = message
                self.latest[index] = message.get("counters") or self.latest.get(index, {})
            elif kind == "error":
                self.errors.append(f"shard {index}: {message.get('message', 'failed')}")
        code = await process.wait()
        if index not in self.finals and not any(e.startswith(f"shard {index}:") for e in self.errors):
            self.errors.append(f"shard {index}: process exited with code {code} before finishing")

    @property
    def finished(self) -> bool:
        return all(task.done() for task in self._readers)

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
            if process.returncode is None and process.stdin is not None:
                try:
                    process.stdin.write(b"stop\n")
                except (ConnectionError, RuntimeError):
                    pass

    async def wait(self) -> None:
        try:
            await asyncio.wait_for(asyncio.gather(*self._readers, return_exceptions=True),
                                   None if not self._stopping else STOP_GRACE_SECONDS)
        except TimeoutError:
            self.kill()
            await asyncio.gather(*self._readers, return_exceptions=True)

    def kill(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()

    def counters(self) -> list[dict[str, Any]]:
        return list(self.latest.values())


def _emit(message: dict[str, Any]) -> None:
    try:
        sys.stdout.write(json.dumps(message, default=str) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        os._exit(3)


def main() -> int:
    """A child shard: read its config from stdin, run its calls, report on stdout."""
    from curation.generation.params import GenerationParams
    from curation.generation.run import _Run
    from curation.store.db import make_engine
    from curation.teachers.base import make_teacher

    config = json.loads(sys.stdin.readline())
    api_key = config.pop("api_key", None)
    parent = int(config["parent_pid"])
    stop = threading.Event()

    def watch_stdin() -> None:
        # "stop" asks for a graceful stop; end of input means the coordinator is gone.
        if sys.stdin.readline().strip() == "stop":
            stop.set()
        else:
            os._exit(3)

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(3)

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Thread(target=watch_parent, daemon=True).start()
    params = GenerationParams.from_dict(config["params"])
    params.teacher.concurrency = int(config["concurrency"])
    teacher = make_teacher(params.teacher, api_key=api_key)
    try:
        engine = make_engine(config["url"])
        run = _Run(engine, params, teacher, None, None, float(config["tick"]))

        def progress(counters: dict[str, Any]) -> None:
            _emit({"type": "counters", "counters": counters})
            if stop.is_set():
                raise StopRequested()

        gen, stats = run.run_shard(int(config["batch_id"]), config["calls"], progress)
        _emit(
            {
                "type": "final",
                "stop_reason": gen.stop_reason if gen is not None else None,
                "counters": gen.counters() if gen is not None else {},
                "stats": {
                    "requests": stats.requests, "retries": stats.retries, "rate_limited": stats.rate_limited,
                    "errors": dict(stats.errors), "slots_ok": stats.slots_ok, "slots_failed": stats.slots_failed,
                    "slots_cached": stats.slots_cached, "prompt_tokens": stats.prompt_tokens,
                    "completion_tokens": stats.completion_tokens,
                    "cached_prompt_tokens": stats.cached_prompt_tokens,
                    "cached_completion_tokens": stats.cached_completion_tokens,
                },
            }
        )
        return 0
    except Exception as exc:  # noqa: BLE001 - reported to the coordinator, scrubbed of the key
        _emit({"type": "error", "message": teacher.scrub(f"{type(exc).__name__}: {exc}")[:500]})
        return 1


if __name__ == "__main__":
    code = main()
    # Skip interpreter shutdown: everything is committed and reported by now, and a
    # coordinator that went away must not leave this process lingering.
    os._exit(code)
