"""An order's reservation across products, through the inventory handlers: all lines or
none, decided once per order, released or committed once, and what the saga hears."""

import contextlib
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from uuid import UUID

import hypothesis
import pytest
from hypothesis import strategies as st

import inventory.events
from inventory.commands import CommitStock, ReleaseStock, ReserveStock
from inventory.domain.reservation import (
    NothingReserved,
    OrderReservation,
    ReservationAlreadyCommitted,
    ReservationStatus,
)
from inventory.domain.stock import InvalidReservation, StockItem
from inventory.events import (
    OrderReservationCommitted,
    OrderReservationPlaced,
    OrderReservationRejected,
    OrderReservationReleased,
    ProductRegistered,
    ReservationLine,
    ReservedLineV1,
    StockReleasedV1,
    StockReservationFailedV1,
    StockReservedV1,
)
from inventory.handlers import commit_stock, release_stock, reserve_stock
from inventory.integration import outbound
from platform_core.eventsourcing.bus import CommandBus
from platform_core.eventsourcing.memory import InMemoryEventStore, InMemorySnapshotStore
from platform_core.eventsourcing.repository import Repository
from platform_core.eventsourcing.serialization import EventCodec

AT = datetime(2025, 1, 2, tzinfo=UTC)
ORDER = UUID("00000000-0000-4000-8000-000000000001")
OTHER = UUID("00000000-0000-4000-8000-000000000002")
CODEC = EventCodec(inventory.events.EVENTS)


def line(sku: str, quantity: int) -> ReservationLine:
    return ReservationLine(sku=sku, quantity=quantity)


class Warehouse:
    """The inventory handlers on an in-memory store, behind a bus without transactions."""

    def __init__(self, products: dict[str, int]) -> None:
        self.store = InMemoryEventStore()
        self.snapshots = InMemorySnapshotStore()
        self.stock = Repository(
            StockItem,
            store=self.store,
            codec=CODEC,
            snapshots=self.snapshots,
            snapshot_every=2,
            clock=lambda: AT,
        )
        self.reservations = Repository(
            OrderReservation, store=self.store, codec=CODEC, clock=lambda: AT
        )
        repositories = {"stock": self.stock, "reservations": self.reservations}
        self.bus = CommandBus(
            {
                ReserveStock: partial(reserve_stock, **repositories),
                ReleaseStock: partial(release_stock, **repositories),
                CommitStock: partial(commit_stock, **repositories),
            },
            transaction=contextlib.nullcontext,
        )
        for sku, on_hand in products.items():
            item = StockItem.register(
                sku=sku, name=sku.title(), price=Decimal("1.00"), initial_stock=on_hand
            )
            self.stock.save(item)

    def reserve(self, *lines: ReservationLine, order_id: UUID = ORDER) -> None:
        self.bus.handle(ReserveStock(order_id=order_id, lines=lines))

    def levels(self, sku: str) -> tuple[int, int]:
        state = self.stock.get(sku).state
        return state.on_hand, state.reserved

    def events(self, stream_id: str) -> list[object]:
        return [
            CODEC.decode(e.event_type, e.schema_version, e.data)
            for e in self.store.read_stream(stream_id)
        ]

    def outcome(self, order_id: UUID = ORDER) -> list[object]:
        return self.events(f"reservation-{order_id}")

    def status(self, order_id: UUID = ORDER) -> ReservationStatus:
        return self.reservations.get(str(order_id)).state.status


def test_an_order_reserves_every_line_and_records_one_outcome():
    warehouse = Warehouse({"MUG-1": 10, "TEA-2": 5})

    warehouse.reserve(line("MUG-1", 2), line("TEA-2", 5))

    assert warehouse.levels("MUG-1") == (10, 2)
    assert warehouse.levels("TEA-2") == (5, 5)
    assert warehouse.outcome() == [
        OrderReservationPlaced(
            order_id=ORDER, lines=(line("MUG-1", 2), line("TEA-2", 5)), placed_at=AT
        )
    ]


def test_a_shortage_on_any_line_reserves_no_line_and_records_why():
    warehouse = Warehouse({"MUG-1": 10, "TEA-2": 5, "JAM-3": 1})

    warehouse.reserve(line("MUG-1", 2), line("TEA-2", 6), line("JAM-3", 1))

    # Availability is checked for every line before any is reserved: nothing to roll back.
    for sku in ("MUG-1", "TEA-2", "JAM-3"):
        assert [type(e) for e in warehouse.events(f"stock-{sku}")] == [ProductRegistered]
    [rejected] = warehouse.outcome()
    assert isinstance(rejected, OrderReservationRejected)
    assert rejected.reason == "Insufficient stock: TEA-2: 6 requested, 5 available."


def test_the_rejection_names_every_short_line_and_unknown_product():
    warehouse = Warehouse({"MUG-1": 1, "TEA-2": 5})

    warehouse.reserve(line("MUG-1", 2), line("NOPE-9", 1), line("TEA-2", 1))

    [rejected] = warehouse.outcome()
    assert rejected.reason == (
        "Insufficient stock: MUG-1: 2 requested, 1 available. NOPE-9: no such product."
    )
    assert warehouse.levels("TEA-2") == (5, 0)


def test_lines_for_the_same_product_are_reserved_together():
    warehouse = Warehouse({"MUG-1": 3})

    warehouse.reserve(line("MUG-1", 2), line("MUG-1", 2))

    assert warehouse.levels("MUG-1") == (3, 0)
    assert warehouse.status() is ReservationStatus.REJECTED


@pytest.mark.parametrize("lines", [(), (line("MUG-1", 0),), (line("MUG-1", 1), line("MUG-1", -1))])
def test_a_reservation_needs_lines_of_positive_quantity(lines):
    warehouse = Warehouse({"MUG-1": 3})

    with pytest.raises(InvalidReservation):
        warehouse.reserve(*lines)

    assert warehouse.outcome() == []


def test_an_order_is_reserved_once_whatever_repeats_ask():
    warehouse = Warehouse({"MUG-1": 10})
    warehouse.reserve(line("MUG-1", 2))

    warehouse.reserve(line("MUG-1", 2))
    warehouse.reserve(line("MUG-1", 7))

    assert warehouse.levels("MUG-1") == (10, 2)
    assert len(warehouse.outcome()) == 1


def test_a_rejected_order_stays_rejected_after_a_restock():
    warehouse = Warehouse({"MUG-1": 1})
    warehouse.reserve(line("MUG-1", 2))
    item = warehouse.stock.get("MUG-1")
    item.restock(5)
    warehouse.stock.save(item)

    warehouse.reserve(line("MUG-1", 2))

    assert warehouse.levels("MUG-1") == (6, 0)
    assert warehouse.status() is ReservationStatus.REJECTED


def test_releasing_an_order_gives_back_every_line_once():
    warehouse = Warehouse({"MUG-1": 10, "TEA-2": 5})
    warehouse.reserve(line("MUG-1", 2), line("TEA-2", 1))
    warehouse.reserve(line("MUG-1", 3), order_id=OTHER)

    warehouse.bus.handle(ReleaseStock(order_id=ORDER, skus=("MUG-1",)))
    warehouse.bus.handle(ReleaseStock(order_id=ORDER, skus=("MUG-1", "TEA-2")))

    assert warehouse.levels("MUG-1") == (10, 3)
    assert warehouse.levels("TEA-2") == (5, 0)
    assert warehouse.outcome()[1:] == [
        OrderReservationReleased(
            order_id=ORDER, lines=(line("MUG-1", 2), line("TEA-2", 1)), released_at=AT
        )
    ]


def test_a_release_before_any_reservation_keeps_a_late_reservation_from_holding_stock():
    warehouse = Warehouse({"MUG-1": 10})

    warehouse.bus.handle(ReleaseStock(order_id=ORDER, skus=("MUG-1",)))
    warehouse.reserve(line("MUG-1", 2))

    assert warehouse.levels("MUG-1") == (10, 0)
    assert warehouse.outcome() == [
        OrderReservationReleased(order_id=ORDER, lines=(), released_at=AT)
    ]


def test_releasing_a_rejected_reservation_records_nothing():
    warehouse = Warehouse({"MUG-1": 1})
    warehouse.reserve(line("MUG-1", 2))

    warehouse.bus.handle(ReleaseStock(order_id=ORDER))

    assert len(warehouse.outcome()) == 1
    assert warehouse.status() is ReservationStatus.REJECTED


def test_committing_an_order_takes_its_stock_off_the_shelf_once():
    warehouse = Warehouse({"MUG-1": 10, "TEA-2": 5})
    warehouse.reserve(line("MUG-1", 2), line("TEA-2", 5))

    warehouse.bus.handle(CommitStock(order_id=ORDER))
    warehouse.bus.handle(CommitStock(order_id=ORDER, skus=("MUG-1", "TEA-2")))

    assert warehouse.levels("MUG-1") == (8, 0)
    assert warehouse.levels("TEA-2") == (0, 0)
    assert warehouse.outcome()[1:] == [
        OrderReservationCommitted(
            order_id=ORDER, lines=(line("MUG-1", 2), line("TEA-2", 5)), committed_at=AT
        )
    ]


def test_committed_stock_cannot_be_released():
    warehouse = Warehouse({"MUG-1": 10})
    warehouse.reserve(line("MUG-1", 2))
    warehouse.bus.handle(CommitStock(order_id=ORDER))

    with pytest.raises(ReservationAlreadyCommitted):
        warehouse.bus.handle(ReleaseStock(order_id=ORDER))

    assert warehouse.levels("MUG-1") == (8, 0)


@pytest.mark.parametrize("history", ["none", "rejected", "released"])
def test_only_reserved_stock_can_be_committed(history):
    warehouse = Warehouse({"MUG-1": 1})
    if history == "rejected":
        warehouse.reserve(line("MUG-1", 2))
    if history == "released":
        warehouse.reserve(line("MUG-1", 1))
        warehouse.bus.handle(ReleaseStock(order_id=ORDER))

    with pytest.raises(NothingReserved):
        warehouse.bus.handle(CommitStock(order_id=ORDER, skus=("MUG-1",)))

    assert warehouse.levels("MUG-1") == (1, 0)


def test_an_order_holding_stock_since_before_a_snapshot_gives_back_its_line():
    warehouse = Warehouse({"MUG-1": 10})
    for number in range(1, 5):
        warehouse.reserve(line("MUG-1", number), order_id=UUID(int=number))
    assert warehouse.snapshots.load("stock-MUG-1") is not None

    warehouse.bus.handle(ReleaseStock(order_id=UUID(int=2)))
    warehouse.bus.handle(CommitStock(order_id=UUID(int=3)))

    assert warehouse.levels("MUG-1") == (7, 5)


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "release", "commit", "restock"]),
        st.integers(min_value=1, max_value=4),
        st.integers(min_value=1, max_value=6),
    ),
    max_size=30,
)


@hypothesis.given(OPERATIONS)
def test_stock_holds_what_live_reservations_hold_whatever_the_commands(operations):
    warehouse = Warehouse({"MUG-1": 10})
    for operation, order_number, quantity in operations:
        order_id = UUID(int=order_number)
        with contextlib.suppress(NothingReserved, ReservationAlreadyCommitted):
            match operation:
                case "reserve":
                    warehouse.reserve(line("MUG-1", quantity), order_id=order_id)
                case "release":
                    warehouse.bus.handle(ReleaseStock(order_id=order_id))
                case "commit":
                    warehouse.bus.handle(CommitStock(order_id=order_id))
                case "restock":
                    item = warehouse.stock.get("MUG-1")
                    item.restock(quantity)
                    warehouse.stock.save(item)
        on_hand, reserved = warehouse.levels("MUG-1")
        assert 0 <= reserved <= on_hand
        assert reserved == sum(
            r.state.lines[0].quantity
            for n in range(1, 5)
            if (r := warehouse.reservations.find(str(UUID(int=n)))) is not None
            and r.state.status is ReservationStatus.RESERVED
        )
    replayed = Repository(StockItem, store=warehouse.store, codec=CODEC).get("MUG-1")
    assert replayed.state == warehouse.stock.get("MUG-1").state


def test_an_orders_reservation_is_published_as_reserved_failed_or_released():
    lines = (line("MUG-1", 2),)

    assert outbound(OrderReservationPlaced(order_id=ORDER, lines=lines, placed_at=AT)) == [
        StockReservedV1(order_id=ORDER, lines=(ReservedLineV1(sku="MUG-1", quantity=2),))
    ]
    assert outbound(
        OrderReservationRejected(order_id=ORDER, lines=lines, reason="short", rejected_at=AT)
    ) == [StockReservationFailedV1(order_id=ORDER, reason="short")]
    assert outbound(OrderReservationReleased(order_id=ORDER, lines=lines, released_at=AT)) == [
        StockReleasedV1(order_id=ORDER)
    ]
