"""A thread-safe least-recently-used cache with a budget in bytes.

The app server is one long-lived process whose threads (one per browser session) share
in-process caches: loaded embedding models, and the nearest-neighbour pools of the review
card (a batch's vectors plus the reference sets, up to ~77 MB each). Without a bound such
a cache grows by one entry per batch or model for as long as the server runs. Here the
least recently used entries are dropped once the entries' sizes add up to more than the
budget, and concurrent requests for a missing key wait for one build instead of each
building their own copy.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MB = 1024 * 1024


def budget_from_env(variable: str, default_mb: float) -> int:
    """The budget in bytes named by environment variable `variable` in MB (`default_mb` when unset)."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return int(default_mb * MB)
    megabytes = float(raw) if raw.replace(".", "", 1).isdigit() else -1.0
    if megabytes < 0:
        raise ValueError(f"{variable} must be a size in MB (a number, 0 or more), got {raw!r}")
    return int(megabytes * MB)


class ByteBudgetLRU(Generic[K, V]):
    """Entries kept while their sizes (`size_of(value)`, in bytes) add up to at most
    `budget_bytes`; the least recently used go first. An entry larger than the whole
    budget is returned to its caller but not kept. With `max_age_seconds`, an older entry
    counts as missing and is built again (for caches of data that changes underneath)."""

    def __init__(
        self,
        budget_bytes: int,
        size_of: Callable[[V], int],
        *,
        max_age_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget_bytes = budget_bytes
        self._size_of = size_of
        self._max_age = max_age_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, tuple[float, int, V]] = OrderedDict()
        self._building: dict[K, Future[V]] = {}
        self._total = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self._total

    def get_or_build(self, key: K, build: Callable[[], V]) -> V:
        """The cached value of `key`, else `build()`'s, kept for next time.

        While one thread builds a key, other threads asking for it wait for that build
        (and see its exception, if it raises); different keys build in parallel."""
        with self._lock:
            hit = self._fresh(key)
            if hit is not None:
                return hit[2]
            pending = self._building.get(key)
            owner = pending is None
            if pending is None:
                pending = self._building[key] = Future()
        if not owner:
            return pending.result()
        try:
            value = build()
        except BaseException as exc:
            with self._lock:
                del self._building[key]
            pending.set_exception(exc)
            raise
        size = self._size_of(value)
        with self._lock:
            del self._building[key]
            self._store(key, value, size)
        pending.set_result(value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._total = 0

    def _fresh(self, key: K) -> tuple[float, int, V] | None:
        """The entry of `key` if it is young enough, marked most recently used (lock held)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._max_age is not None and self._clock() - entry[0] >= self._max_age:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def _store(self, key: K, value: V, size: int) -> None:
        """Keep `value` and drop the least recently used entries beyond the budget (lock held)."""
        if key in self._entries:
            self._drop(key)
        if size > self.budget_bytes:
            return
        self._entries[key] = (self._clock(), size, value)
        self._total += size
        while self._total > self.budget_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: K) -> None:
        _, size, _ = self._entries.pop(key)
        self._total -= size
