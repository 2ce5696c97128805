"""Stock held for orders on one StockItem: reserve, release and commit move its totals,
never more than is on hand, and never give back more than it holds. (Which order holds
what, and doing each once per order, is the OrderReservation's: test_order_reservation.)"""

from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from inventory.domain.stock import (
    InsufficientStock,
    InvalidReservation,
    ReleasedMoreThanHeld,
    StockItem,
)
from inventory.events import (
    ProductRegistered,
    ReservationCommitted,
    ReservationReleased,
    StockLevelChangedV1,
    StockReplenished,
    StockReserved,
)
from inventory.integration import outbound

AT = datetime(2025, 1, 2, tzinfo=UTC)
ORDER = UUID("00000000-0000-4000-8000-000000000001")
OTHER = UUID("00000000-0000-4000-8000-000000000002")


def registered(sku: str = "MUG-1", initial_stock: int = 10) -> ProductRegistered:
    return ProductRegistered(
        sku=sku,
        name=sku.title(),
        price=Decimal("7.50"),
        initial_stock=initial_stock,
        registered_at=AT,
    )


def reserved(quantity: int, total: int, order_id: UUID = ORDER) -> StockReserved:
    return StockReserved(
        sku="MUG-1", order_id=order_id, quantity=quantity, reserved=total, reserved_at=AT
    )


def given(*events: object) -> StockItem:
    item = StockItem("MUG-1", clock=lambda: AT)
    for event in (registered(), *events):
        item.replay(event)
    return item


def test_reserving_holds_stock_for_the_order_without_touching_stock_on_hand():
    item = given()

    item.reserve(ORDER, 3)

    assert item.collect_pending() == [
        StockReserved(sku="MUG-1", order_id=ORDER, quantity=3, reserved=3, reserved_at=AT)
    ]
    assert (item.state.on_hand, item.state.reserved, item.state.available) == (10, 3, 7)


def test_reservations_of_several_orders_add_up():
    item = given(reserved(3, 3))

    item.reserve(OTHER, 4)

    assert item.collect_pending() == [
        StockReserved(sku="MUG-1", order_id=OTHER, quantity=4, reserved=7, reserved_at=AT)
    ]
    assert item.state.available == 3


@pytest.mark.parametrize("quantity", [11, 8])
def test_an_order_cannot_reserve_more_than_is_available(quantity):
    item = given(reserved(3, 3, order_id=OTHER))

    with pytest.raises(InsufficientStock, match="MUG-1"):
        item.reserve(ORDER, quantity)

    assert item.collect_pending() == []
    assert item.state.available == 7


def test_the_last_unit_can_be_reserved_and_then_none_is_left():
    item = given()

    item.reserve(ORDER, 10)

    assert item.state.available == 0
    with pytest.raises(InsufficientStock):
        item.reserve(OTHER, 1)


@pytest.mark.parametrize("quantity", [0, -2])
def test_a_reservation_of_nothing_or_less_is_refused(quantity):
    with pytest.raises(InvalidReservation):
        given().reserve(ORDER, quantity)


@pytest.mark.parametrize("operation", ["release", "commit"])
@pytest.mark.parametrize("quantity", [0, -1])
def test_giving_back_nothing_or_less_is_refused(operation, quantity):
    item = given(reserved(3, 3))

    with pytest.raises(InvalidReservation):
        getattr(item, operation)(ORDER, quantity)


@pytest.mark.parametrize("operation", ["release", "commit"])
def test_more_than_is_held_in_all_cannot_be_given_back(operation):
    item = given(reserved(3, 3))

    with pytest.raises(ReleasedMoreThanHeld, match="MUG-1: 4 to give back, 3 held"):
        getattr(item, operation)(OTHER, 4)

    assert item.collect_pending() == []


def test_releasing_gives_the_orders_stock_back():
    item = given(reserved(3, 3), reserved(2, 5, order_id=OTHER))

    item.release(ORDER, 3)

    assert item.collect_pending() == [
        ReservationReleased(sku="MUG-1", order_id=ORDER, quantity=3, reserved=2, released_at=AT)
    ]
    assert (item.state.on_hand, item.state.reserved) == (10, 2)


def test_committing_takes_the_reserved_stock_off_the_stock_on_hand():
    item = given(reserved(3, 3), reserved(2, 5, order_id=OTHER))

    item.commit(ORDER, 3)

    assert item.collect_pending() == [
        ReservationCommitted(
            sku="MUG-1", order_id=ORDER, quantity=3, on_hand=7, reserved=2, committed_at=AT
        )
    ]
    assert (item.state.on_hand, item.state.reserved, item.state.available) == (7, 2, 5)


def test_restocking_makes_more_available_beside_the_reservations():
    item = given(reserved(10, 10))

    item.restock(4)
    item.reserve(OTHER, 4)

    assert (item.state.on_hand, item.state.reserved, item.state.available) == (14, 14, 0)


def test_replaying_reservations_rebuilds_the_same_state():
    events = [
        reserved(3, 3),
        reserved(2, 5, order_id=OTHER),
        ReservationReleased(sku="MUG-1", order_id=ORDER, quantity=3, reserved=2, released_at=AT),
        StockReplenished(sku="MUG-1", quantity=5, on_hand=15, replenished_at=AT),
        ReservationCommitted(
            sku="MUG-1", order_id=OTHER, quantity=2, on_hand=13, reserved=0, committed_at=AT
        ),
    ]

    item = given(*events)

    assert item.version == 6
    assert (item.state.on_hand, item.state.reserved, item.state.available) == (13, 0, 13)


def test_committed_stock_is_published_as_the_new_stock_level():
    committed = ReservationCommitted(
        sku="MUG-1", order_id=ORDER, quantity=2, on_hand=8, reserved=0, committed_at=AT
    )

    assert outbound(committed) == [StockLevelChangedV1(sku="MUG-1", on_hand=8)]
    assert outbound(reserved(2, 2)) == []
