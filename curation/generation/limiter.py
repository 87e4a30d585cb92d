"""Flow control for many concurrent teacher calls: an AIMD concurrency limiter,
retry backoff, and the error-rate breaker that stops a hopeless batch."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, deque


class AdaptiveLimiter:
    """Bounded concurrency that adapts to rate limits (AIMD, like TCP congestion control).

    On a 429 the limit is halved (at most once per "epoch": 429s for requests sent
    before the last decrease do not count again) and new requests pause for the
    server's Retry-After; each success then adds 1/limit, so the limit climbs back
    by about one per round of successful requests, up to `max_limit`.
    """

    def __init__(self, max_limit: int, *, min_limit: int = 1, decrease: float = 0.5) -> None:
        self.max_limit = max(1, int(max_limit))
        self.min_limit = max(1, min(int(min_limit), self.max_limit))
        self.decrease = decrease
        self.limit = float(self.max_limit)
        self.in_flight = 0
        self.epoch = 0
        self.paused_until = 0.0
        self.decreases = 0
        self._waiters: deque[asyncio.Future[int]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def current(self) -> int:
        return max(self.min_limit, int(self.limit))

    async def acquire(self) -> int:
        """Wait for a slot; returns the epoch the request is sent in."""
        if not self._waiters and self.in_flight < self.current and time.monotonic() >= self.paused_until:
            self.in_flight += 1
            return self.epoch
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._schedule_wake()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()
            else:
                try:
                    self._waiters.remove(future)
                except ValueError:
                    pass
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        if time.monotonic() < self.paused_until:
            self._schedule_wake()
            return
        while self._waiters and self.in_flight < self.current:
            future = self._waiters.popleft()
            if future.done():
                continue
            self.in_flight += 1
            future.set_result(self.epoch)

    def _schedule_wake(self) -> None:
        delay = self.paused_until - time.monotonic()
        if delay <= 0:
            if self._waiters and self.in_flight < self.current:
                asyncio.get_running_loop().call_soon(self._wake)
            return
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(delay, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._wake()

    def on_success(self) -> None:
        if self.limit < self.max_limit:
            before = self.current
            self.limit = min(float(self.max_limit), self.limit + 1.0 / self.limit)
            if self.current > before:
                self._wake()

    def on_rate_limit(self, epoch: int, retry_after: float | None) -> None:
        """A request sent in `epoch` was told to slow down."""
        if retry_after:
            self.paused_until = max(self.paused_until, time.monotonic() + retry_after)
        if epoch == self.epoch:
            self.limit = max(float(self.min_limit), self.limit * self.decrease)
            self.epoch += 1
            self.decreases += 1


def backoff_delay(
    attempt: int, *, base: float = 0.25, cap: float = 30.0, rng: random.Random | None = None
) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, times U(0.5, 1.5)."""
    draw = (rng or random).uniform(0.5, 1.5)
    return min(cap, base * (2 ** max(0, attempt - 1))) * draw


HINTS = {
    "auth": "check the API key (environment variable ${env})",
    "not_found": "check the model name {model!r} (list the endpoint's models with: python -m curation teacher-models)",
    "quota": "the account has no quota left",
    "connection": "is the endpoint reachable at {base_url}?",
    "timeout": "the endpoint does not answer within {timeout:g}s; raise the timeout or lower the concurrency",
    "server_error": "the endpoint keeps failing with server errors",
    "malformed": "the endpoint's answers are not valid chat-completion JSON",
    "bad_request": "the endpoint rejects the requests (check the model's parameters, e.g. max_tokens)",
    "unexpected": "an unexpected error; see the last error",
}


class ErrorWindow:
    """Sliding window over recent request outcomes (429s excluded: the limiter handles those).
    `record` returns a stop reason once the error rate reaches `threshold` over at least
    `min_events` outcomes."""

    def __init__(self, size: int = 50, threshold: float = 0.5, min_events: int | None = None) -> None:
        self.size = max(1, size)
        self.threshold = threshold
        self.min_events = min(self.size, min_events if min_events is not None else 10)
        self.events: deque[str | None] = deque(maxlen=self.size)
        self.errors = 0
        self.last_error = ""

    def record(self, kind: str | None, message: str = "") -> bool:
        """kind None = success. True when the breaker trips."""
        if len(self.events) == self.size and self.events[0] is not None:
            self.errors -= 1
        self.events.append(kind)
        if kind is not None:
            self.errors += 1
            self.last_error = message
        return (
            len(self.events) >= self.min_events
            and self.errors > 0
            and self.errors / len(self.events) >= self.threshold
        )

    def reason(self, *, env: str | None, model: str, base_url: str, timeout: float) -> str:
        kinds = Counter(k for k in self.events if k is not None)
        kind, _ = kinds.most_common(1)[0] if kinds else ("unexpected", 0)
        hint = HINTS.get(kind, HINTS["unexpected"]).format(
            env=env or "?", model=model, base_url=base_url, timeout=timeout
        )
        rate = self.errors / max(1, len(self.events))
        breakdown = ", ".join(f"{k} {n}" for k, n in kinds.most_common())
        return (
            f"stopped: {self.errors} of the last {len(self.events)} requests failed ({rate:.0%}, threshold "
            f"{self.threshold:.0%}; {breakdown}): {hint}. Last error: {self.last_error[:300]}"
        )
