"""Histories the domain can produce, for the projection property tests.

Each order and each product is a lane: its events in the order its aggregates recorded
them. A history is some orders and products; a schedule interleaves their lanes in any
order (one lane's order kept) and cuts the result into transactions of any size
(projection_schedules.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from inventory.events import (
    ProductRegistered,
    ReservationCommitted,
    ReservationReleased,
    StockReplenished,
    StockReserved,
)
from orders.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderLine,
    OrderPlaced,
    OrderShipped,
    ShippingAddress,
)
from payments.events import PaymentCaptured, PaymentDeclined, PaymentRefunded, PaymentVoided
from shipping.events import (
    Address,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentDispatched,
)

SKUS = ("MUG-1", "TEA-2", "PEN-3")
EPOCH = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
ADDRESS = ShippingAddress(
    name="Ada", line1="1 Analytical St", city="London", postal_code="N1", country="GB"
)

# (stream id, stream type, event): one event as its aggregate appends it.
Step = tuple[str, str, Any]
Maker = Callable[[datetime], Any]


def at_tick(tick: int) -> datetime:
    return EPOCH + timedelta(minutes=tick)


@dataclass(frozen=True)
class OrderFacts:
    """One order's facts, and a maker for each event its aggregates can record."""

    id: uuid.UUID
    lines: tuple[OrderLine, ...]
    reason: str

    @property
    def total(self) -> Decimal:
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal("0"))

    @property
    def shipment(self) -> str:
        return f"shp-{self.id}"

    @property
    def tracking(self) -> str:
        return f"TRK{self.id.int:08d}"

    def placed(self, at: datetime) -> OrderPlaced:
        return OrderPlaced(
            order_id=self.id,
            customer_id=self.id.int % 3 + 1,
            lines=self.lines,
            shipping_address=ADDRESS,
            payment_ref="pvr_test",
            total=self.total,
            placed_at=at,
        )

    def confirmed(self, at: datetime) -> OrderConfirmed:
        return OrderConfirmed(order_id=self.id, confirmed_at=at)

    def cancelled(self, at: datetime) -> OrderCancelled:
        return OrderCancelled(order_id=self.id, reason=self.reason, cancelled_at=at)

    def shipped(self, at: datetime) -> OrderShipped:
        return OrderShipped(
            order_id=self.id,
            shipment_id=self.shipment,
            tracking_number=self.tracking,
            shipped_at=at,
        )

    def delivered(self, at: datetime) -> OrderDelivered:
        return OrderDelivered(order_id=self.id, delivered_at=at)

    def captured(self, at: datetime) -> PaymentCaptured:
        return PaymentCaptured(
            order_id=self.id, amount=self.total, charge_id=f"ch-{self.id}", captured_at=at
        )

    def declined(self, at: datetime) -> PaymentDeclined:
        return PaymentDeclined(
            order_id=self.id, amount=self.total, reason="card declined", declined_at=at
        )

    def refunded(self, at: datetime) -> PaymentRefunded:
        return PaymentRefunded(
            order_id=self.id,
            amount=self.total,
            charge_id=f"ch-{self.id}",
            refund_id=f"re-{self.id}",
            refunded_at=at,
        )

    def voided(self, at: datetime) -> PaymentVoided:
        return PaymentVoided(order_id=self.id, reason="never charged", voided_at=at)

    def booked(self, at: datetime) -> ShipmentCreated:
        address = Address(**vars(ADDRESS))
        return ShipmentCreated(
            shipment_id=self.shipment,
            order_id=self.id,
            address=address,
            tracking_number=self.tracking,
            created_at=at,
        )

    def unbooked(self, at: datetime) -> ShipmentCancelled:
        return ShipmentCancelled(
            shipment_id=self.shipment, order_id=self.id, reason="order cancelled", cancelled_at=at
        )

    def dispatched(self, at: datetime) -> ShipmentDispatched:
        return ShipmentDispatched(
            shipment_id=self.shipment,
            order_id=self.id,
            tracking_number=self.tracking,
            dispatched_at=at,
        )

    def handed_over(self, at: datetime) -> ShipmentDelivered:
        return ShipmentDelivered(shipment_id=self.shipment, order_id=self.id, delivered_at=at)


def _lifecycle(order: OrderFacts, draw: st.DrawFn) -> list[Maker]:
    """The saga's paths. Shipping and orders report dispatch and delivery each in their
    own stream, so either may come first; compensations run in any order."""
    o = order
    dispatch = draw(st.permutations([o.dispatched, o.shipped]))
    delivery = draw(st.permutations([o.handed_over, o.delivered]))
    paths: list[tuple[list[Maker], list[Maker]]] = [
        ([o.placed, o.captured, o.booked, o.confirmed, *dispatch, *delivery], []),
        ([o.placed, o.declined], [o.cancelled]),
        ([o.placed, o.captured, o.booked, o.confirmed], [o.cancelled, o.unbooked, o.refunded]),
        ([o.placed, o.captured], [o.unbooked, o.refunded, o.cancelled]),
        ([o.placed], [o.cancelled, o.voided, o.unbooked]),
        ([o.placed], [o.cancelled, o.captured, o.refunded]),
    ]
    done, compensations = draw(st.sampled_from(paths))
    if o.captured in compensations:  # a late charge is refunded, never before it lands
        return [*done, *compensations]
    return [*done, *draw(st.permutations(compensations))]


_REASONS = st.from_regex(r"[A-Za-zé0-9](?:[A-Za-zé0-9 ]{0,18}[A-Za-zé0-9])?", fullmatch=True)


@st.composite
def order_lane(draw: st.DrawFn, number: int, skus: Sequence[str]) -> list[Step]:
    lines = draw(
        st.lists(
            st.builds(
                OrderLine,
                sku=st.sampled_from(skus),
                name=st.just("Product"),
                quantity=st.integers(1, 5),
                unit_price=st.integers(1, 9999).map(lambda cents: Decimal(cents).scaleb(-2)),
            ),
            min_size=1,
            max_size=len(skus),
            unique_by=lambda line: line.sku,
        )
    )
    order = OrderFacts(id=uuid.UUID(int=number + 1), lines=tuple(lines), reason=draw(_REASONS))
    makers = _lifecycle(order, draw)
    kept = draw(st.integers(1, len(makers)))
    return [as_step(make(at_tick(tick))) for tick, make in enumerate(makers[:kept])]


class Shelf:
    """One product's stock as the StockItem aggregate keeps it: one reservation per
    order, never more reserved than on hand; each event states the totals after it.
    Releasing or committing moves a whole reservation (the `pick`-th held), whatever
    quantity was drawn; an operation the stock does not allow records nothing (None)."""

    def __init__(self, sku: str, initial: int) -> None:
        self.sku, self.on_hand = sku, initial
        self.held: dict[uuid.UUID, int] = {}
        self.orders = 0

    def replenish(self, quantity: int, pick: int, at: datetime) -> Any:
        self.on_hand += quantity
        return StockReplenished(
            sku=self.sku, quantity=quantity, on_hand=self.on_hand, replenished_at=at
        )

    def reserve(self, quantity: int, pick: int, at: datetime) -> Any:
        if quantity > self.on_hand - sum(self.held.values()):
            return None
        self.orders += 1
        order_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.sku}/{self.orders}")
        self.held[order_id] = quantity
        reserved = sum(self.held.values())
        return StockReserved(
            sku=self.sku, order_id=order_id, quantity=quantity, reserved=reserved, reserved_at=at
        )

    def release(self, quantity: int, pick: int, at: datetime) -> Any:
        if not self.held:
            return None
        order_id = list(self.held)[pick % len(self.held)]
        quantity = self.held.pop(order_id)
        reserved = sum(self.held.values())
        return ReservationReleased(
            sku=self.sku, order_id=order_id, quantity=quantity, reserved=reserved, released_at=at
        )

    def commit(self, quantity: int, pick: int, at: datetime) -> Any:
        if not self.held:
            return None
        order_id = list(self.held)[pick % len(self.held)]
        quantity = self.held.pop(order_id)
        self.on_hand -= quantity
        return ReservationCommitted(
            sku=self.sku,
            order_id=order_id,
            quantity=quantity,
            on_hand=self.on_hand,
            reserved=sum(self.held.values()),
            committed_at=at,
        )


_STOCK_OPERATIONS = st.tuples(
    st.sampled_from(["replenish", "reserve", "release", "commit"]),
    st.integers(1, 6),
    st.integers(0, 5),
)


@st.composite
def product_lane(draw: st.DrawFn, sku: str) -> list[Step]:
    initial = draw(st.integers(0, 20))
    registered = ProductRegistered(
        sku=sku,
        name=f"Product {sku}",
        price=Decimal("4.20"),
        initial_stock=initial,
        registered_at=at_tick(0),
    )
    shelf, events = Shelf(sku, initial), [registered]
    for kind, quantity, pick in draw(st.lists(_STOCK_OPERATIONS, max_size=8)):
        event = getattr(shelf, kind)(quantity, pick, at_tick(len(events)))
        if event is not None:
            events.append(event)
    return [as_step(event) for event in events]


# Each context's aggregates name their streams `<category>-<id>`.
_STREAMS = {
    "inventory": ("stock", "sku"),
    "payments": ("payment", "order_id"),
    "shipping": ("shipment", "shipment_id"),
    "orders": ("order", "order_id"),
}


def as_step(event: Any) -> Step:
    """The stream an event belongs to, as its aggregate names it."""
    category, key = _STREAMS[type(event).__module__.partition(".")[0]]
    return (f"{category}-{getattr(event, key)}", category, event)


@st.composite
def histories(draw: st.DrawFn, max_orders: int = 5) -> list[list[Step]]:
    """Lanes of a few orders and products."""
    skus = SKUS[: draw(st.integers(1, len(SKUS)))]
    orders = [draw(order_lane(number, skus)) for number in range(draw(st.integers(1, max_orders)))]
    return orders + [draw(product_lane(sku)) for sku in skus]
