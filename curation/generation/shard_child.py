"""A shard process of a generation run (``python -m curation.generation.shard_child``):
it waits for its configuration on stdin, answers the calls it asks its coordinator
for, and reports counters as JSON lines on stdout. See `curation.generation.shard`
for the coordinator's side and why runs are spread over processes."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from curation.generation.conversation import teacher_for
from curation.generation.params import GenerationParams
from curation.generation.run import GenerationRun
from curation.generation.shard import CallFeed, StopRequested
from curation.store.db import make_engine

_EMIT_LOCK = threading.Lock()


def _emit(message: dict[str, Any]) -> None:
    """One JSON line on stdout (called from the event loop and the progress thread)."""
    line = json.dumps(message, default=str, separators=(",", ":")) + "\n"
    try:
        with _EMIT_LOCK:
            sys.stdout.write(line)
            sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        os._exit(3)


def main() -> int:
    """A child shard: wait for its config on stdin, answer calls it asks for, report on stdout."""
    first = sys.stdin.readline()
    if not first:
        return 0
    config = json.loads(first)
    if config.get("type") != "config":
        return 0
    api_key = config.pop("api_key", None)
    parent = int(config["parent_pid"])
    stop = threading.Event()
    feed = CallFeed(lambda count: _emit({"type": "want", "count": count}), chunk=int(config["concurrency"]))

    def watch_stdin() -> None:
        # Calls from the coordinator, or "stop" (a graceful stop); end of input
        # means the coordinator is gone.
        for line in sys.stdin:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("type") == "stop":
                stop.set()
            elif message.get("type") == "calls":
                feed.deliver_threadsafe(message["calls"], bool(message.get("end")))
        os._exit(3)

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(3)

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Thread(target=watch_parent, daemon=True).start()
    params = GenerationParams.from_dict(config["params"])
    params.teacher.concurrency = int(config["concurrency"])
    teacher = teacher_for(params, api_key=api_key)
    try:
        engine = make_engine(config["url"])
        run = GenerationRun(engine, params, teacher, None, None, float(config["tick"]))

        def progress(counters: dict[str, Any]) -> None:
            _emit({"type": "counters", "counters": counters})
            if stop.is_set():
                raise StopRequested()

        gen, stats = run.run_shard(int(config["batch_id"]), feed, progress)
        _emit(
            {
                "type": "final",
                "stop_reason": gen.stop_reason if gen is not None else None,
                "counters": gen.counters() if gen is not None else {},
                "stats": stats.shard_report(),
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
