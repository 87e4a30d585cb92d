"""Running a coroutine on the fastest event loop available.

uvloop (libuv) costs noticeably less CPU per socket event than asyncio's default
selector loop, which matters for the generation engine and the test server at
hundreds of requests per second. Without uvloop (not installed, or a platform it
does not support) the standard loop is used: behaviour is the same.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Set ASSAY_NO_UVLOOP=1 to force the standard asyncio loop.
NO_UVLOOP_ENV = "ASSAY_NO_UVLOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None (asyncio's default)."""
    if os.environ.get(NO_UVLOOP_ENV):
        return None
    try:
        import uvloop  # optional (not on Windows): loaded only when a loop is made
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Like `asyncio.run`, on uvloop when available."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
