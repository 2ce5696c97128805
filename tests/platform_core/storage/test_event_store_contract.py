"""The event store port's contract, run against every adapter.

`memory` is the in-memory store; `sql` is `event_store_for()` on the configured database:
SQLite by default, PostgreSQL when DATABASE_URL points at it, so CI runs the suite twice.
The `sql` store needs real commits because PostgreSQL's global log only shows events whose
transaction has ended.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import ClassVar
from uuid import UUID, uuid4

import msgspec
import pytest

from platform_core.eventsourcing.eventstore import (
    LOG_START,
    AppendResult,
    ConcurrencyError,
    EventMetadata,
    EventStore,
    NewEvent,
    RecordedEvent,
)
from platform_core.eventsourcing.memory import InMemoryEventStore
from platform_core.eventsourcing.serialization import EventCodec
from platform_core.storage.sql_store import event_store_for


@pytest.fixture(
    params=["memory", pytest.param("sql", marks=pytest.mark.django_db(transaction=True))]
)
def store(request: pytest.FixtureRequest) -> EventStore:
    if request.param == "memory":
        return InMemoryEventStore()
    return VisibleAfterAppend(event_store_for())


class VisibleAfterAppend:
    """Waits (bounded) after each append until the global log shows it.

    On PostgreSQL an append becomes readable once every older transaction on the server
    has ended; on a server shared with other work that can take a moment. The contract
    is about what readers see once that happened, so the tests wait for it explicitly.
    """

    def __init__(self, inner: EventStore) -> None:
        self._inner = inner
        self.read_stream = inner.read_stream
        self.read_all = inner.read_all
        self.head = inner.head

    def append(
        self, stream_id: str, stream_type: str, expected_version: int, events: list[NewEvent]
    ) -> AppendResult:
        result = self._inner.append(stream_id, stream_type, expected_version, events)
        deadline = time.monotonic() + 10
        while self._inner.head() < result.log_position:
            assert time.monotonic() < deadline, "the append never became visible"
            time.sleep(0.005)
        return result


def new_event(event_type: str = "ItemAdded", **metadata: str) -> NewEvent:
    return NewEvent(
        event_type=event_type,
        data=b'{"sku":"SKU-1","quantity":2}',
        metadata=EventMetadata(event_id=uuid4(), **metadata),
    )


def new_events(count: int) -> list[NewEvent]:
    return [new_event() for _ in range(count)]


def ids_of(events: list[NewEvent] | list[RecordedEvent]) -> list[UUID]:
    return [event.metadata.event_id for event in events]


def read_everything(store: EventStore) -> list[RecordedEvent]:
    return store.read_all(LOG_START, limit=10_000)


def test_a_new_stream_reads_back_in_order_with_versions_from_one(store: EventStore) -> None:
    events = new_events(3)

    result = store.append("cart-1", "Cart", 0, events)

    recorded = store.read_stream("cart-1")
    assert ids_of(recorded) == ids_of(events)
    assert [event.version for event in recorded] == [1, 2, 3]
    assert {event.stream_id for event in recorded} == {"cart-1"}
    assert result.stream_version == 3


def test_appending_at_the_current_version_extends_the_stream(store: EventStore) -> None:
    first, second = new_events(2), new_events(2)
    store.append("cart-1", "Cart", 0, first)

    result = store.append("cart-1", "Cart", 2, second)

    recorded = store.read_stream("cart-1")
    assert ids_of(recorded) == ids_of(first + second)
    assert [event.version for event in recorded] == [1, 2, 3, 4]
    assert result.stream_version == 4


def test_appending_at_a_stale_version_raises_a_concurrency_error(store: EventStore) -> None:
    store.append("cart-1", "Cart", 0, new_events(2))

    with pytest.raises(ConcurrencyError) as raised:
        store.append("cart-1", "Cart", 1, [new_event()])

    assert (raised.value.stream_id, raised.value.expected_version) == ("cart-1", 1)


def test_a_stale_append_writes_nothing(store: EventStore) -> None:
    existing = new_events(2)
    store.append("cart-1", "Cart", 0, existing)

    with pytest.raises(ConcurrencyError):
        store.append("cart-1", "Cart", 0, [new_event()])

    assert ids_of(store.read_stream("cart-1")) == ids_of(existing)
    assert ids_of(read_everything(store)) == ids_of(existing)


def test_appending_ahead_of_the_stream_raises_a_concurrency_error(store: EventStore) -> None:
    store.append("cart-1", "Cart", 0, new_events(2))

    with pytest.raises(ConcurrencyError):
        store.append("cart-1", "Cart", 5, [new_event()])

    assert [event.version for event in store.read_stream("cart-1")] == [1, 2]


def test_appending_to_a_new_stream_at_a_later_version_raises_a_concurrency_error(
    store: EventStore,
) -> None:
    with pytest.raises(ConcurrencyError):
        store.append("cart-1", "Cart", 1, [new_event()])

    assert store.read_stream("cart-1") == []


def test_a_multi_event_append_is_all_or_nothing(store: EventStore) -> None:
    existing = new_events(2)
    store.append("cart-1", "Cart", 0, existing)

    # Versions 2, 3 and 4: only the first collides, yet none of them may be written.
    with pytest.raises(ConcurrencyError):
        store.append("cart-1", "Cart", 1, new_events(3))

    assert ids_of(store.read_stream("cart-1")) == ids_of(existing)
    assert ids_of(read_everything(store)) == ids_of(existing)


def test_reading_a_stream_after_a_version_returns_only_the_later_events(
    store: EventStore,
) -> None:
    events = new_events(5)
    store.append("cart-1", "Cart", 0, events)

    recorded = store.read_stream("cart-1", after_version=3)

    assert ids_of(recorded) == ids_of(events[3:])
    assert [event.version for event in recorded] == [4, 5]
    assert store.read_stream("cart-1", after_version=5) == []


def test_reading_an_unknown_stream_returns_nothing(store: EventStore) -> None:
    assert store.read_stream("cart-unknown") == []


def test_the_global_log_returns_every_event_in_append_order(store: EventStore) -> None:
    first, second, third = new_events(2), new_events(1), new_events(3)
    store.append("cart-1", "Cart", 0, first)
    store.append("cart-2", "Cart", 0, second)
    store.append("cart-1", "Cart", 2, third)

    recorded = store.read_all(LOG_START)

    assert ids_of(recorded) == ids_of(first + second + third)
    positions = [event.log_position for event in recorded]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)


def test_resuming_the_global_log_from_the_last_position_returns_the_rest_without_duplicates(
    store: EventStore,
) -> None:
    before, after = new_events(3), new_events(2)
    store.append("cart-1", "Cart", 0, before)
    checkpoint = store.read_all(LOG_START)[-1].log_position
    store.append("cart-2", "Cart", 0, after)

    assert ids_of(store.read_all(checkpoint)) == ids_of(after)
    assert store.read_all(store.read_all(checkpoint)[-1].log_position) == []


def test_the_global_log_returns_at_most_limit_events(store: EventStore) -> None:
    events = new_events(5)
    store.append("cart-1", "Cart", 0, events)

    page = store.read_all(LOG_START, limit=2)
    next_page = store.read_all(page[-1].log_position, limit=2)
    last_page = store.read_all(next_page[-1].log_position, limit=2)

    assert ids_of(page + next_page + last_page) == ids_of(events)
    assert [len(page), len(next_page), len(last_page)] == [2, 2, 1]


def test_head_is_the_log_start_when_the_store_is_empty(store: EventStore) -> None:
    assert store.head() == LOG_START
    assert store.read_all(LOG_START) == []


def test_head_is_the_position_of_the_last_appended_event(store: EventStore) -> None:
    store.append("cart-1", "Cart", 0, new_events(2))
    result = store.append("cart-2", "Cart", 0, new_events(3))

    last = read_everything(store)[-1]
    assert store.head() == last.log_position == result.log_position
    assert store.read_all(store.head()) == []


def test_metadata_round_trips(store: EventStore) -> None:
    event = new_event(
        correlation_id="req-7f3a",
        causation_id=str(uuid4()),
        actor="user:alice",
        tenant="acme",
    )
    bare = new_event()
    store.append("cart-1", "Cart", 0, [event, bare])

    recorded = store.read_stream("cart-1")

    assert [e.metadata for e in recorded] == [event.metadata, bare.metadata]
    assert [e.metadata for e in read_everything(store)] == [event.metadata, bare.metadata]


@dataclass(frozen=True, kw_only=True)
class PaymentCaptured:
    event_type: ClassVar[str] = "PaymentCaptured"
    schema_version: ClassVar[int] = 2

    payment_id: UUID
    amount: Decimal
    fee: Decimal
    captured_at: datetime
    settles_at: datetime


def test_decimals_uuids_and_aware_datetimes_round_trip_exactly_through_codec_and_store(
    store: EventStore,
) -> None:
    codec = EventCodec([PaymentCaptured])
    captured = PaymentCaptured(
        payment_id=uuid4(),
        amount=Decimal("10.10"),
        fee=Decimal("1E+2"),
        captured_at=datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
        settles_at=datetime(
            2024, 3, 1, 9, 0, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))
        ),
    )
    event_type, schema_version, data = codec.encode(captured)
    store.append(
        "payment-1",
        "Payment",
        0,
        [
            NewEvent(
                event_type=event_type,
                schema_version=schema_version,
                data=data,
                metadata=EventMetadata(event_id=uuid4()),
            )
        ],
    )

    [recorded] = store.read_stream("payment-1")
    decoded = codec.decode(recorded.event_type, recorded.schema_version, recorded.data)

    assert msgspec.json.decode(recorded.data) == msgspec.json.decode(data)
    assert decoded == captured
    assert (str(decoded.amount), str(decoded.fee)) == ("10.10", "1E+2")
    assert decoded.payment_id == captured.payment_id
    assert decoded.captured_at.microsecond == 123456
    assert decoded.settles_at.microsecond == 1
    assert decoded.settles_at.utcoffset() == timedelta(hours=5, minutes=30)


def test_stream_type_event_type_and_schema_version_are_stored(store: EventStore) -> None:
    upgraded = NewEvent(
        event_type="ItemRemoved",
        schema_version=3,
        data=b"{}",
        metadata=EventMetadata(event_id=uuid4()),
    )
    store.append("cart-1", "Cart", 0, [new_event("ItemAdded"), upgraded])

    for recorded in (store.read_stream("cart-1"), read_everything(store)):
        assert [(e.stream_type, e.event_type, e.schema_version) for e in recorded] == [
            ("Cart", "ItemAdded", 1),
            ("Cart", "ItemRemoved", 3),
        ]


def test_recorded_at_is_timezone_aware(store: EventStore) -> None:
    store.append("cart-1", "Cart", 0, [new_event()])

    [recorded] = store.read_stream("cart-1")

    assert recorded.recorded_at.utcoffset() is not None
    # Loose bound: the database's clock need not agree with this process's.
    assert abs(recorded.recorded_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_two_streams_interleave_in_the_global_log_in_append_order(store: EventStore) -> None:
    appended: list[tuple[str, UUID]] = []
    versions = {"cart-1": 0, "cart-2": 0}
    for stream_id in ["cart-1", "cart-2", "cart-2", "cart-1", "cart-2", "cart-1"]:
        event = new_event()
        store.append(stream_id, "Cart", versions[stream_id], [event])
        versions[stream_id] += 1
        appended.append((stream_id, event.metadata.event_id))

    recorded = read_everything(store)

    assert [(e.stream_id, e.metadata.event_id) for e in recorded] == appended
    assert [(e.stream_id, e.version) for e in recorded] == [
        ("cart-1", 1),
        ("cart-2", 1),
        ("cart-2", 2),
        ("cart-1", 2),
        ("cart-2", 3),
        ("cart-1", 3),
    ]
    assert ids_of(store.read_stream("cart-2")) == [
        event_id for s, event_id in appended if s == "cart-2"
    ]
