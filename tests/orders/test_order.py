"""The Order aggregate: given events, when a command, then events (or a refusal)."""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from orders.commands import OrderItem
from orders.domain.order import (
    EmptyOrder,
    InvalidQuantity,
    InvalidReason,
    InvalidTransition,
    Order,
    OrderCannotBeCancelled,
    OrderStatus,
    ProductQuote,
    UnknownProduct,
)
from orders.events import (
    OrderCancellationRefused,
    OrderCancellationRequested,
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderLine,
    OrderPlaced,
    OrderShipped,
    ShippingAddress,
)

ORDER_ID = UUID("00000000-0000-4000-8000-000000000001")
AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ADDRESS = ShippingAddress(
    name="Ada Lovelace", line1="1 Analytical St", city="London", postal_code="N1", country="GB"
)
MUG = OrderLine(sku="MUG-1", name="Mug", quantity=2, unit_price=Decimal("7.50"))


class FakeCatalog:
    """The products on sale, by SKU."""

    def __init__(self, products: Mapping[str, ProductQuote]) -> None:
        self._products = dict(products)

    def quote(self, skus: Sequence[str]) -> Mapping[str, ProductQuote]:
        return {sku: self._products[sku] for sku in skus if sku in self._products}


CATALOG = FakeCatalog(
    {
        "MUG-1": ProductQuote(name="Mug", unit_price=Decimal("7.50")),
        "TEA-2": ProductQuote(name="Green tea", unit_price=Decimal("3.99")),
    }
)


def placed(*lines: OrderLine) -> OrderPlaced:
    lines = lines or (MUG,)
    return OrderPlaced(
        order_id=ORDER_ID,
        customer_id=7,
        lines=lines,
        shipping_address=ADDRESS,
        payment_ref="pvr_test",
        total=sum((line.unit_price * line.quantity for line in lines), Decimal("0")),
        placed_at=AT,
    )


CONFIRMED = OrderConfirmed(order_id=ORDER_ID, confirmed_at=AT)
CANCELLED = OrderCancelled(order_id=ORDER_ID, reason="changed my mind", cancelled_at=AT)
SHIPPED = OrderShipped(order_id=ORDER_ID, shipment_id="S-1", tracking_number="TRK1", shipped_at=AT)
DELIVERED = OrderDelivered(order_id=ORDER_ID, delivered_at=AT)


def given(*events: object) -> Order:
    order = Order(str(ORDER_ID), clock=lambda: AT)
    for event in events:
        order.replay(event)
    return order


def place(*items: OrderItem) -> Order:
    return Order.place(
        order_id=ORDER_ID,
        customer_id=7,
        items=items,
        shipping_address=ADDRESS,
        payment_ref="pvr_test",
        catalog=CATALOG,
        clock=lambda: AT,
    )


def test_placing_an_order_records_priced_lines_and_their_total():
    order = place(OrderItem(sku="MUG-1", quantity=2), OrderItem(sku="TEA-2", quantity=3))

    assert order.collect_pending() == [
        OrderPlaced(
            order_id=ORDER_ID,
            customer_id=7,
            lines=(
                OrderLine(sku="MUG-1", name="Mug", quantity=2, unit_price=Decimal("7.50")),
                OrderLine(sku="TEA-2", name="Green tea", quantity=3, unit_price=Decimal("3.99")),
            ),
            shipping_address=ADDRESS,
            payment_ref="pvr_test",
            total=Decimal("26.97"),
            placed_at=AT,
        )
    ]
    assert order.state.status is OrderStatus.PENDING
    assert order.version == 1


def test_an_order_needs_at_least_one_item():
    with pytest.raises(EmptyOrder):
        place()


@pytest.mark.parametrize("quantity", [0, -1])
def test_every_quantity_must_be_positive(quantity):
    with pytest.raises(InvalidQuantity):
        place(OrderItem(sku="MUG-1", quantity=1), OrderItem(sku="TEA-2", quantity=quantity))


def test_an_order_for_an_unknown_product_is_refused_naming_it():
    with pytest.raises(UnknownProduct, match="NOPE-9"):
        place(OrderItem(sku="MUG-1", quantity=1), OrderItem(sku="NOPE-9", quantity=1))


def test_a_pending_order_can_be_confirmed():
    order = given(placed())

    order.confirm()

    assert order.collect_pending() == [OrderConfirmed(order_id=ORDER_ID, confirmed_at=AT)]
    assert order.state.status is OrderStatus.CONFIRMED


def test_confirming_a_confirmed_order_records_nothing():
    order = given(placed(), CONFIRMED)

    order.confirm()

    assert order.collect_pending() == []


@pytest.mark.parametrize("history", [(), (CONFIRMED,)], ids=["pending", "confirmed"])
def test_an_order_not_yet_shipped_can_be_cancelled_with_a_reason(history):
    order = given(placed(), *history)

    order.cancel("  found it cheaper  ")

    assert order.collect_pending() == [
        OrderCancelled(order_id=ORDER_ID, reason="found it cheaper", cancelled_at=AT)
    ]
    assert order.state.status is OrderStatus.CANCELLED
    assert order.state.cancellation_reason == "found it cheaper"


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_a_cancellation_request_needs_a_reason_of_sensible_length(reason):
    order = given(placed())

    with pytest.raises(InvalidReason):
        order.request_cancellation(reason)

    assert order.collect_pending() == []


def test_the_decision_to_cancel_is_never_refused_for_a_long_reason():
    """The saga's reason for a shortage lists every line that is short: it can run long,
    and a decision already taken must not be dead-lettered for it."""
    order = given(placed())

    order.cancel("Insufficient stock: " + "SKU-X: 2 requested, 1 available. " * 40)

    [cancelled] = order.collect_pending()
    assert len(cancelled.reason) == 500
    assert cancelled.reason.endswith("…")
    assert order.state.status is OrderStatus.CANCELLED


def test_cancelling_a_cancelled_order_records_nothing():
    order = given(placed(), CANCELLED)

    order.cancel("again")

    assert order.collect_pending() == []
    assert order.state.cancellation_reason == "changed my mind"


@pytest.mark.parametrize(
    "history", [(CONFIRMED, SHIPPED), (CONFIRMED, SHIPPED, DELIVERED)], ids=["shipped", "delivered"]
)
def test_an_order_cannot_be_cancelled_after_shipping(history):
    order = given(placed(), *history)

    with pytest.raises(OrderCannotBeCancelled):
        order.cancel("too late")

    assert order.collect_pending() == []


@pytest.mark.parametrize(
    ("history", "status"),
    [((), OrderStatus.PENDING), ((CONFIRMED,), OrderStatus.CONFIRMED)],
    ids=["pending", "confirmed"],
)
def test_a_customer_asks_to_cancel_and_the_order_waits_for_the_decision(history, status):
    order = given(placed(), *history)

    order.request_cancellation("  changed my mind ")
    order.request_cancellation("asked twice")

    assert order.collect_pending() == [
        OrderCancellationRequested(order_id=ORDER_ID, reason="changed my mind", requested_at=AT)
    ]
    assert order.state.status is status, "the saga decides"
    assert order.state.cancellation_requested == "changed my mind"


@pytest.mark.parametrize(
    "history", [(CONFIRMED, SHIPPED), (CONFIRMED, SHIPPED, DELIVERED)], ids=["shipped", "delivered"]
)
def test_a_cancellation_cannot_be_asked_for_after_shipping(history):
    order = given(placed(), *history)

    with pytest.raises(OrderCannotBeCancelled):
        order.request_cancellation("too late")


def test_a_refused_cancellation_is_recorded_once_and_the_order_goes_on():
    asked = OrderCancellationRequested(order_id=ORDER_ID, reason="changed my mind", requested_at=AT)
    order = given(placed(), CONFIRMED, asked)

    order.refuse_cancellation("the shipment is dispatched")
    order.refuse_cancellation("again")
    order.mark_shipped(shipment_id="S-1", tracking_number="TRK1")

    refused, shipped = order.collect_pending()
    assert refused == OrderCancellationRefused(
        order_id=ORDER_ID, reason="the shipment is dispatched", refused_at=AT
    )
    assert isinstance(shipped, OrderShipped)
    assert order.state.cancellation_requested == ""


def test_a_pending_order_whose_parcel_left_is_confirmed_then_shipped():
    order = given(placed())

    order.mark_shipped(shipment_id="S-1", tracking_number="TRK1")
    order.confirm()

    assert [type(e) for e in order.collect_pending()] == [OrderConfirmed, OrderShipped]
    assert order.state.status is OrderStatus.SHIPPED


def test_a_confirmed_order_ships_then_is_delivered():
    order = given(placed(), CONFIRMED)

    order.mark_shipped(shipment_id="S-1", tracking_number="TRK1")
    order.mark_delivered()

    assert order.collect_pending() == [
        OrderShipped(order_id=ORDER_ID, shipment_id="S-1", tracking_number="TRK1", shipped_at=AT),
        OrderDelivered(order_id=ORDER_ID, delivered_at=AT),
    ]
    assert order.state.status is OrderStatus.DELIVERED


def test_shipping_or_delivering_twice_records_nothing():
    order = given(placed(), CONFIRMED, SHIPPED)
    order.mark_shipped(shipment_id="S-1", tracking_number="TRK1")
    order.mark_delivered()
    order.mark_delivered()

    assert order.collect_pending() == [OrderDelivered(order_id=ORDER_ID, delivered_at=AT)]


def _confirm(order: Order) -> None:
    order.confirm()


def _ship(order: Order) -> None:
    order.mark_shipped(shipment_id="S-1", tracking_number="TRK1")


def _deliver(order: Order) -> None:
    order.mark_delivered()


@pytest.mark.parametrize(
    ("history", "command"),
    [
        ((), _deliver),
        ((CONFIRMED,), _deliver),
        ((CANCELLED,), _ship),
        ((CONFIRMED, CANCELLED), _deliver),
        ((CONFIRMED, SHIPPED, DELIVERED), _ship),
    ],
    ids=[
        "deliver-pending",
        "deliver-confirmed",
        "ship-cancelled",
        "deliver-cancelled",
        "ship-delivered",
    ],
)
def test_an_order_only_moves_forward(history, command):
    order = given(placed(), *history)

    with pytest.raises(InvalidTransition):
        command(order)

    assert order.collect_pending() == []


@pytest.mark.parametrize(
    "history", [(CANCELLED,), (CONFIRMED, SHIPPED)], ids=["cancelled", "shipped"]
)
def test_a_confirmation_after_the_order_moved_on_records_nothing(history):
    """The saga's confirmation may arrive after the customer cancelled (the cancel has
    undone the rest) or be delivered again later: neither is an error to dead-letter."""
    order = given(placed(), *history)
    before = order.state.status

    order.confirm()

    assert order.collect_pending() == []
    assert order.state.status is before


def test_replaying_events_rebuilds_state_and_version():
    order = given(placed(MUG), CONFIRMED, CANCELLED)

    assert order.version == 3
    assert order.state.status is OrderStatus.CANCELLED
    assert order.state.lines == (MUG,)
    assert order.state.total == Decimal("15.00")
    assert order.state.customer_id == 7
