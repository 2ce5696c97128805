"""The per-connection buffer of live updates: one pending update per row, the latest
position wins, sent in log order, and it says when it holds more rows than its limit."""

from __future__ import annotations

import asyncio

from platform_core.eventsourcing.eventstore import LogPosition
from platform_core.live.broadcast import CoalescingBuffer, LiveUpdate


def update(key: str, tx: int, pos: int) -> LiveUpdate:
    return LiveUpdate(key=key, position=LogPosition(tx, pos), frame=f"{key}@{tx}.{pos}")


def drain(buffer: CoalescingBuffer) -> list[str]:
    async def take_all() -> list[str]:
        return [(await buffer.take()).frame for _ in range(len(buffer))]

    return asyncio.run(take_all())


def test_changes_to_one_row_coalesce_to_the_latest():
    buffer = CoalescingBuffer(limit=2)
    for position in range(1, 11):
        assert buffer.offer(update("a", 1, position))

    assert drain(buffer) == ["a@1.10"]


def test_an_older_change_never_replaces_a_newer_one():
    buffer = CoalescingBuffer(limit=2)
    buffer.offer(update("a", 2, 1))
    buffer.offer(update("a", 1, 9))

    assert drain(buffer) == ["a@2.1"]


def test_rows_leave_in_the_order_of_their_latest_change():
    buffer = CoalescingBuffer(limit=3)
    for key, tx, pos in [("a", 1, 1), ("b", 1, 2), ("a", 1, 3), ("c", 1, 4)]:
        buffer.offer(update(key, tx, pos))

    assert drain(buffer) == ["b@1.2", "a@1.3", "c@1.4"]


def test_an_update_no_newer_than_one_sent_is_discarded():
    buffer = CoalescingBuffer(limit=3)
    buffer.offer(update("a", 1, 1))
    buffer.offer(update("b", 1, 5))
    buffer.discard("a", LogPosition(1, 2))
    buffer.discard("b", LogPosition(1, 4))

    assert drain(buffer) == ["b@1.5"]


def test_the_buffer_reports_more_distinct_rows_than_its_limit():
    buffer = CoalescingBuffer(limit=2)

    assert buffer.offer(update("a", 1, 1))
    assert buffer.offer(update("b", 1, 2))
    assert not buffer.offer(update("c", 1, 3))


def test_taking_waits_for_an_update():
    async def scenario() -> str:
        buffer = CoalescingBuffer(limit=1)
        taking = asyncio.create_task(buffer.take())
        await asyncio.sleep(0)  # let it start waiting on the empty buffer
        assert not taking.done()
        buffer.offer(update("a", 1, 1))
        return (await taking).frame

    assert asyncio.run(scenario()) == "a@1.1"
