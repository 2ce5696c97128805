"""Projections at the same place in the log share one read of it (no database needed)."""

from __future__ import annotations

import uuid

from platform_core.eventsourcing.eventstore import (
    LOG_START,
    EventMetadata,
    LogPosition,
    NewEvent,
    RecordedEvent,
)
from platform_core.eventsourcing.memory import InMemoryEventStore
from platform_core.projections.shared_reads import SharedReads


def _made() -> NewEvent:
    return NewEvent(event_type="Made", data=b"{}", metadata=EventMetadata(event_id=uuid.uuid4()))


class CountingStore:
    """The in-memory store, counting the log reads that reach it."""

    def __init__(self, events: int) -> None:
        self.store, self.reads = InMemoryEventStore(), 0
        for n in range(events):
            self.store.append(f"s-{n}", "Thing", 0, [_made()])

    def read_all(self, after: LogPosition = LOG_START, limit: int = 1000) -> list[RecordedEvent]:
        self.reads += 1
        return self.store.read_all(after, limit)

    def head(self) -> LogPosition:
        return self.store.head()


def test_a_second_projection_at_the_same_place_gets_the_batch_without_a_read():
    counting = CountingStore(events=10)
    reads = SharedReads(counting)

    first, second = reads.read_all(LOG_START, 4), reads.read_all(LOG_START, 4)

    assert counting.reads == 1
    assert second == first == counting.store.read_all(LOG_START, 4)


def test_a_read_from_elsewhere_or_for_more_goes_to_the_store():
    counting = CountingStore(events=10)
    reads = SharedReads(counting)
    batch = reads.read_all(LOG_START, 4)

    further = reads.read_all(batch[-1].log_position, 4)
    more = reads.read_all(batch[-1].log_position, 8)

    assert counting.reads == 3
    assert [e.position for e in more] == [e.position for e in counting.store.read_all()][4:]
    assert further == more[:4]


def test_a_short_batch_at_the_head_is_read_again_since_more_may_have_come():
    counting = CountingStore(events=3)
    reads = SharedReads(counting)
    assert len(reads.read_all(LOG_START, 4)) == 3

    counting.store.append("s-late", "Thing", 0, [_made()])

    assert len(reads.read_all(LOG_START, 4)) == 4
    assert counting.reads == 2
