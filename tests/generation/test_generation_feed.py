"""Work sharing between a coordinator and its shard processes, in-process parts."""

from __future__ import annotations

import asyncio
from collections import deque
from types import SimpleNamespace

from curation.generation.engine import Call, GenerationEngine
from curation.generation.shard import CallFeed


def test_a_feed_asks_once_while_a_request_is_outstanding_and_ends_on_an_empty_answer():
    asked: list[int] = []

    async def scenario() -> list[object]:
        feed = CallFeed(asked.append, chunk=3)
        queue: list[object] = []
        queue_deque: deque[object] = deque()
        feed.bind(queue_deque)
        waiter = asyncio.ensure_future(feed.wait())
        await asyncio.sleep(0)
        feed.top_up()  # a second ask while the first is unanswered is not sent
        assert asked == [3]
        feed.deliver_threadsafe([[1, [0], None], [2, [0], None]], end=False)
        assert await waiter is True
        queue.extend(queue_deque)
        queue_deque.clear()
        waiter = asyncio.ensure_future(feed.wait())
        await asyncio.sleep(0)
        assert asked == [3, 3]  # the queue ran low again
        feed.deliver_threadsafe([], end=True)
        assert await waiter is False and feed.ended
        feed.top_up()
        assert asked == [3, 3]
        return queue

    assert asyncio.run(scenario()) == [[1, [0], None], [2, [0], None]]


def test_give_away_hands_out_only_uncached_calls_from_the_far_end():
    engine = GenerationEngine.__new__(GenerationEngine)
    engine._stop = asyncio.Event()
    item = lambda index: SimpleNamespace(index=index)  # noqa: E731
    engine._queue = deque(Call(item=item(i), candidates=[0], key=f"k{i}") for i in range(5))
    engine._cached = deque([Call(item=item(9), candidates=[0], key="k9", cached={"choices": []})])
    assert engine.give_away(2) == [[4, [0], "k4"], [3, [0], "k3"]]
    assert engine.give_away(10) == [[2, [0], "k2"], [1, [0], "k1"], [0, [0], "k0"]]
    assert engine.give_away(10) == []
    assert len(engine._cached) == 1
    engine._queue.append(Call(item=item(7), candidates=[0]))
    engine._stop.set()
    assert engine.give_away(10) == []  # a stopped run gives nothing away
