"""A math-check worker process: ``python -m curation.mathcheck.worker``.

Protocol: one JSON object per line. The parent first sends
``{"config": {...}}``; the worker warms up and answers ``{"ready": true}``. Then
each request ``{"id": n, "kind": "check" | "cluster", "args": {...}}`` gets one
reply ``{"id": n, "result": {...}}`` or ``{"id": n, "error": "..."}``, in order.
The worker exits at end of input. Checks run in this process's main thread, so
math-verify's signal-based timeouts apply; the parent's hard limit covers the rest.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
from typing import Any, TextIO

from curation.mathcheck.config import MathCheckConfig
from curation.mathcheck.core import check_answer, cluster_answers
from curation.mathcheck.speedups import install


def _limit_memory(megabytes: int) -> None:
    if megabytes <= 0:
        return
    try:
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):
        pass


def _handle(request: dict[str, Any], config: MathCheckConfig) -> dict[str, Any]:
    kind, args = request.get("kind"), request.get("args", {})
    if kind == "check":
        return check_answer(args.get("response", ""), args.get("reference"), config)
    if kind == "cluster":
        return cluster_answers(list(args.get("responses", [])), config)
    raise ValueError(f"unknown request kind {kind!r}")


def _warm_up(config: MathCheckConfig) -> None:
    """Import and exercise the parser once so the first real sample is not slowed by it."""
    check_answer("so the answer is $\\boxed{\\frac{1}{2}}$", "0.5", config)
    check_answer("\\boxed{x^2+1}", "1+x^2", config)


def serve(reader: TextIO, writer: TextIO) -> None:
    first = json.loads(reader.readline() or "{}")
    config = MathCheckConfig.from_dict(first.get("config", {}))
    _limit_memory(config.worker_memory_mb)
    if config.fast_parse:
        install()
    _warm_up(config)
    writer.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    writer.flush()
    for line in reader:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            reply = {"id": request.get("id"), "result": _handle(request, config)}
        except MemoryError:
            reply = {"id": request.get("id"), "error": "MemoryError"}
        except Exception as exc:  # noqa: BLE001 - reported to the parent as this sample's error
            reply = {"id": request.get("id"), "error": f"{type(exc).__name__}: {exc}"[:500]}
        writer.write(json.dumps(reply, default=str) + "\n")
        writer.flush()


def main() -> None:
    # Keep the protocol channel private: anything a library prints goes to stderr.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.CRITICAL)
    serve(sys.stdin, protocol_out)


if __name__ == "__main__":
    main()
