"""Loading aggregates by replay (from a snapshot when there is one) and saving them."""

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import pytest

import inventory.events
from inventory.domain.stock import StockItem, StockState
from platform_core.eventsourcing.eventstore import (
    LOG_START,
    AppendResult,
    ConcurrencyError,
    EventStore,
    LogPosition,
    NewEvent,
    RecordedEvent,
)
from platform_core.eventsourcing.memory import InMemoryEventStore, InMemorySnapshotStore
from platform_core.eventsourcing.repository import AggregateNotFound, Repository
from platform_core.eventsourcing.serialization import EventCodec, to_json
from platform_core.eventsourcing.snapshots import Snapshot, SnapshotStore


class ReadCountingStore:
    """An event store that remembers what each `read_stream` asked for and got."""

    def __init__(self) -> None:
        self._inner = InMemoryEventStore()
        self.reads: list[tuple[int, int]] = []

    def append(
        self, stream_id: str, stream_type: str, expected_version: int, events: Sequence[NewEvent]
    ) -> AppendResult:
        return self._inner.append(stream_id, stream_type, expected_version, events)

    def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        events = self._inner.read_stream(stream_id, after_version)
        self.reads.append((after_version, len(events)))
        return events

    def read_all(self, after: LogPosition = LOG_START, limit: int = 1000) -> list[RecordedEvent]:
        return self._inner.read_all(after, limit)

    def head(self) -> LogPosition:
        return self._inner.head()


@pytest.fixture
def store() -> ReadCountingStore:
    return ReadCountingStore()


@pytest.fixture
def snapshots() -> InMemorySnapshotStore:
    return InMemorySnapshotStore()


def repository(
    store: EventStore, snapshots: SnapshotStore | None = None, every: int = 3
) -> Repository[StockItem]:
    codec = EventCodec(inventory.events.EVENTS)
    return Repository(
        StockItem, store=store, codec=codec, snapshots=snapshots, snapshot_every=every
    )


def registered(on_hand: int = 10) -> StockItem:
    return StockItem.register(sku="MUG-1", name="Mug", price=Decimal("7.50"), initial_stock=on_hand)


def restock_one_by_one(stock: Repository[StockItem], times: int) -> None:
    for _ in range(times):
        item = stock.get("MUG-1")
        item.restock(1)
        stock.save(item)


def test_an_aggregate_is_loaded_by_replaying_its_events(store):
    stock = repository(store)
    item = registered(on_hand=10)
    item.restock(5)
    stock.save(item)

    loaded = stock.get("MUG-1")

    assert loaded.version == 2
    assert loaded.state == StockState(name="Mug", price=Decimal("7.50"), on_hand=15)
    assert [e.version for e in store.read_stream("stock-MUG-1")] == [1, 2]


def test_an_aggregate_without_events_does_not_exist(store):
    stock = repository(store)

    assert stock.find("NOPE") is None
    with pytest.raises(AggregateNotFound):
        stock.get("NOPE")


def test_saving_appends_only_the_new_events_after_the_loaded_version(store):
    stock = repository(store)
    stock.save(registered())
    item = stock.get("MUG-1")
    item.restock(2)
    item.restock(3)

    result = stock.save(item)

    assert result is not None
    assert result.stream_version == 3
    assert [e.version for e in store.read_stream("stock-MUG-1")] == [1, 2, 3]
    assert stock.save(item) is None, "events are handed over exactly once"


def test_a_concurrent_save_of_the_same_version_conflicts(store):
    stock = repository(store)
    stock.save(registered())
    first, second = stock.get("MUG-1"), stock.get("MUG-1")
    first.restock(1)
    second.restock(2)
    stock.save(first)

    with pytest.raises(ConcurrencyError) as conflict:
        stock.save(second)

    assert conflict.value.expected_version == 1
    assert stock.get("MUG-1").state.on_hand == 11


def test_registering_twice_conflicts_on_a_new_stream(store):
    stock = repository(store)
    stock.save(registered())

    with pytest.raises(ConcurrencyError):
        stock.save(registered())


def test_a_snapshot_is_taken_each_time_a_save_crosses_a_multiple_of_n(store, snapshots):
    stock = repository(store, snapshots, every=3)
    stock.save(registered())
    restock_one_by_one(stock, 1)
    assert snapshots.load("stock-MUG-1") is None

    restock_one_by_one(stock, 1)
    assert snapshots.load("stock-MUG-1").version == 3

    restock_one_by_one(stock, 3)
    assert snapshots.load("stock-MUG-1").version == 6


def test_a_save_of_several_events_snapshots_at_its_last_version(store, snapshots):
    stock = repository(store, snapshots, every=3)
    item = registered()
    for _ in range(4):
        item.restock(1)

    stock.save(item)

    snapshot = snapshots.load("stock-MUG-1")
    assert (snapshot.version, snapshot.schema) == (5, StockItem.snapshot_schema)


def test_loading_from_a_snapshot_replays_only_the_later_events(store, snapshots):
    stock = repository(store, snapshots, every=3)
    stock.save(registered(on_hand=10))
    restock_one_by_one(stock, 4)
    store.reads.clear()

    item = stock.get("MUG-1")

    assert store.reads == [(3, 2)]
    assert (item.version, item.state.on_hand) == (5, 14)


def test_the_snapshot_state_is_what_loading_starts_from(store, snapshots):
    stock = repository(store, snapshots)
    stock.save(registered(on_hand=10))
    restock_one_by_one(stock, 1)
    # A state no event ever produced proves that loading trusts the snapshot.
    snapshots.save(
        Snapshot(
            stream_id="stock-MUG-1",
            version=2,
            schema=StockItem.snapshot_schema,
            state=to_json(StockState(name="Mug", price=Decimal("7.50"), on_hand=999)),
        )
    )
    store.reads.clear()

    item = stock.get("MUG-1")

    assert store.reads == [(2, 0)]
    assert (item.version, item.state.on_hand) == (2, 999)


def test_a_snapshot_of_an_older_schema_is_ignored(store, snapshots):
    stock = repository(store, snapshots)
    stock.save(registered(on_hand=10))
    restock_one_by_one(stock, 1)
    snapshots.save(
        Snapshot(
            stream_id="stock-MUG-1",
            version=2,
            schema=StockItem.snapshot_schema - 1,
            state=b'{"shape": "from an older release"}',
        )
    )
    store.reads.clear()

    item = stock.get("MUG-1")

    assert store.reads == [(0, 2)]
    assert (item.version, item.state.on_hand) == (2, 11)


def test_an_aggregate_loaded_from_a_snapshot_saves_at_the_right_version(store, snapshots):
    stock = repository(store, snapshots, every=2)
    stock.save(registered())
    restock_one_by_one(stock, 1)

    restock_one_by_one(stock, 1)

    assert [e.version for e in store.read_stream("stock-MUG-1")] == [1, 2, 3]
    assert stock.get("MUG-1").state.on_hand == 12


def test_new_and_loaded_aggregates_read_the_time_from_the_repositorys_clock(store, snapshots):
    at = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    stock = Repository(
        StockItem,
        store=store,
        codec=EventCodec(inventory.events.EVENTS),
        snapshots=snapshots,
        snapshot_every=1,
        clock=lambda: at,
    )
    stock.save(
        StockItem.register(
            sku="MUG-1", name="Mug", price=Decimal("7.50"), initial_stock=1, clock=stock.clock
        )
    )
    from_snapshot = stock.get("MUG-1")
    from_snapshot.restock(2)
    stock.save(from_snapshot)
    replayed = Repository(
        StockItem, store=store, codec=EventCodec(inventory.events.EVENTS), clock=lambda: at
    ).get("MUG-1")
    replayed.restock(3)

    assert [e.replenished_at for e in replayed.collect_pending()] == [at]
    codec = EventCodec(inventory.events.EVENTS)
    times = [
        codec.decode(e.event_type, e.schema_version, e.data)
        for e in store.read_stream("stock-MUG-1")
    ]
    assert [times[0].registered_at, times[1].replenished_at] == [at, at]
