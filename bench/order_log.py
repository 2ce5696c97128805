"""A realistic event log for benchmarks: order lifecycles appended through the real event
store, encoded by the project's codec, as the aggregates and the saga would record them.

Each transaction holds a hundred orders, written phase by phase (placed, stock reserved,
paid or declined, shipment booked or payment voided, confirmed or cancelled, dispatched or
cancelled by the customer, delivered or refunded), so the streams interleave in the log as
they do live. A few hundred products carry the running stock figures their StockItem
aggregates would record. Django must be set up before a LogWriter is made.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from _common import ADDRESS

from inventory.events import (
    OrderReservationCommitted,
    OrderReservationPlaced,
    OrderReservationReleased,
    ProductRegistered,
    ReservationCommitted,
    ReservationLine,
    ReservationReleased,
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
from payments.events import (
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentVoided,
)
from platform_core.eventsourcing.eventstore import EventMetadata, NewEvent
from shipping.carrier import tracking_number_for
from shipping.events import (
    Address,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentDispatched,
)

PRODUCTS = 300
CUSTOMERS = 500
ORDERS_PER_TX = 100
# What becomes of an order: delivered, confirmed only, cancelled by the customer after
# confirmation (shipment cancelled, payment refunded, stock released), payment declined
# (the saga voids the payment, releases the stock, cancels the order).
FATES = (("delivered", 50), ("confirmed", 25), ("cancelled", 15), ("declined", 10))


@dataclass
class _Order:
    id: uuid.UUID
    customer: int
    lines: list[tuple[str, int]]  # (sku, quantity)
    total: Decimal
    fate: str

    @property
    def shipment(self) -> str:
        return f"shp-{self.id}"


class LogWriter:
    """Appends order lifecycles through the real event store, phase by phase over each
    transaction's orders so that the streams interleave in the log as they do live. Each
    aggregate's events go to its own stream (order-, reservation-, stock-, payment-,
    shipment-) with the versions and the running stock figures the aggregates would
    record, and the metadata a Repository adds."""

    def __init__(self, seed: int = 1) -> None:
        from config.bootstrap import build_codec
        from platform_core.storage.sql_store import event_store_for

        self.codec, self.store = build_codec(), event_store_for()
        self.rng = random.Random(seed)
        self.clock = datetime(2026, 1, 5, 8, tzinfo=UTC)
        self.versions: dict[str, int] = {}
        self.stock: dict[str, list[int]] = {}  # sku -> [on_hand, reserved]
        self.prices: dict[str, Decimal] = {}
        self.skus: list[str] = []
        self.events = self.orders = 0
        self._pending: dict[str, tuple[str, list[tuple[Any, str]]]] = {}

    def write(self, target: int) -> None:
        from django.db import transaction

        with transaction.atomic():
            self._register_products()
        while self.events < target:
            orders = [self._new_order() for _ in range(ORDERS_PER_TX)]
            with transaction.atomic():
                for phase in (
                    self._place,
                    self._reserve,
                    self._pay,
                    self._settle,
                    self._confirm,
                    self._dispatch_or_cancel,
                    self._finish,
                ):
                    for order in orders:
                        phase(order)
                    self._flush()
            self.orders += len(orders)

    # --- plumbing

    def _now(self) -> datetime:
        self.clock += timedelta(milliseconds=self.rng.randint(1, 40))
        return self.clock

    def _emit(self, category: str, aggregate_id: object, event: Any, correlation: str) -> None:
        stream = f"{category}-{aggregate_id}"
        self._pending.setdefault(stream, (category, []))[1].append((event, correlation))

    def _flush(self) -> None:
        """One append per stream with the events this phase gave it."""

        for stream, (category, events) in self._pending.items():
            new = []
            for event, correlation in events:
                event_type, schema_version, data = self.codec.encode(event)
                metadata = EventMetadata(
                    event_id=uuid.uuid4(),
                    correlation_id=correlation,
                    causation_id=str(uuid.uuid4()),
                    actor="bench",
                )
                new.append(
                    NewEvent(
                        event_type=event_type,
                        schema_version=schema_version,
                        data=data,
                        metadata=metadata,
                    )
                )
            version = self.versions.get(stream, 0)
            self.store.append(stream, category, version, new)
            self.versions[stream] = version + len(new)
            self.events += len(new)
        self._pending.clear()

    # --- products and orders

    def _register_products(self) -> None:

        for n in range(PRODUCTS):
            sku = f"SKU-{n:04d}"
            self.prices[sku] = Decimal(f"{3 + n % 47}.{n % 100:02d}")
            self.stock[sku] = [1_000_000, 0]
            self.skus.append(sku)
            event = ProductRegistered(
                sku=sku,
                name=f"Product {n}",
                price=self.prices[sku],
                initial_stock=1_000_000,
                registered_at=self._now(),
            )
            self._emit("stock", sku, event, sku)
        self._flush()

    def _new_order(self) -> _Order:
        skus = self.rng.sample(self.skus, self.rng.choice((1, 1, 2, 3)))
        lines = [(sku, self.rng.randint(1, 3)) for sku in skus]
        total = sum((self.prices[sku] * qty for sku, qty in lines), Decimal("0"))
        fate = self.rng.choices([f for f, _ in FATES], [w for _, w in FATES])[0]
        customer = 1000 + self.rng.randrange(CUSTOMERS)
        return _Order(uuid.uuid4(), customer, lines, total, fate)

    def _place(self, order: _Order) -> None:

        lines = tuple(
            OrderLine(sku=sku, name=f"Product {sku}", quantity=qty, unit_price=self.prices[sku])
            for sku, qty in order.lines
        )
        event = OrderPlaced(
            order_id=order.id,
            customer_id=order.customer,
            lines=lines,
            shipping_address=ShippingAddress(**ADDRESS),
            payment_ref=f"pvr_{order.id.hex}",
            total=order.total,
            placed_at=self._now(),
        )
        self._emit("order", order.id, event, str(order.id))

    def _reserve(self, order: _Order) -> None:

        lines = tuple(ReservationLine(sku=sku, quantity=qty) for sku, qty in order.lines)
        at = self._now()
        for sku, qty in order.lines:
            self.stock[sku][1] += qty
            event = StockReserved(
                sku=sku,
                order_id=order.id,
                quantity=qty,
                reserved=self.stock[sku][1],
                reserved_at=at,
            )
            self._emit("stock", sku, event, str(order.id))
        placed = OrderReservationPlaced(order_id=order.id, lines=lines, placed_at=at)
        self._emit("reservation", order.id, placed, str(order.id))

    def _pay(self, order: _Order) -> None:

        at, oid = self._now(), str(order.id)
        if order.fate == "declined":
            event: Any = PaymentDeclined(
                order_id=order.id, amount=order.total, reason="card declined", declined_at=at
            )
        else:
            event = PaymentCaptured(
                order_id=order.id, amount=order.total, charge_id=f"ch_{oid[:12]}", captured_at=at
            )
        self._emit("payment", order.id, event, oid)

    def _settle(self, order: _Order) -> None:

        at, oid = self._now(), str(order.id)
        if order.fate == "declined":
            self._release(order, at)
            voided = PaymentVoided(order_id=order.id, reason="order cancelled", voided_at=at)
            self._emit("payment", order.id, voided, oid)
            return
        created = ShipmentCreated(
            shipment_id=order.shipment,
            order_id=order.id,
            address=Address(**ADDRESS),
            tracking_number=tracking_number_for(order.shipment),
            created_at=at,
        )
        self._emit("shipment", order.shipment, created, oid)

    def _confirm(self, order: _Order) -> None:

        at = self._now()
        if order.fate == "declined":
            event: Any = OrderCancelled(
                order_id=order.id, reason="Payment declined: card declined", cancelled_at=at
            )
        else:
            event = OrderConfirmed(order_id=order.id, confirmed_at=at)
        self._emit("order", order.id, event, str(order.id))

    def _dispatch_or_cancel(self, order: _Order) -> None:

        at, oid = self._now(), str(order.id)
        if order.fate == "cancelled":
            event = OrderCancelled(order_id=order.id, reason="changed my mind", cancelled_at=at)
            self._emit("order", order.id, event, oid)
        if order.fate != "delivered":
            return
        dispatched = ShipmentDispatched(
            shipment_id=order.shipment,
            order_id=order.id,
            tracking_number=tracking_number_for(order.shipment),
            dispatched_at=at,
        )
        self._emit("shipment", order.shipment, dispatched, oid)
        for sku, qty in order.lines:
            stock = self.stock[sku]
            stock[0] -= qty
            stock[1] -= qty
            committed = ReservationCommitted(
                sku=sku,
                order_id=order.id,
                quantity=qty,
                on_hand=stock[0],
                reserved=stock[1],
                committed_at=at,
            )
            self._emit("stock", sku, committed, oid)
        lines = tuple(ReservationLine(sku=sku, quantity=qty) for sku, qty in order.lines)
        whole = OrderReservationCommitted(order_id=order.id, lines=lines, committed_at=at)
        self._emit("reservation", order.id, whole, oid)

    def _finish(self, order: _Order) -> None:

        oid = str(order.id)
        if order.fate == "cancelled":
            at = self._now()
            cancelled = ShipmentCancelled(
                shipment_id=order.shipment,
                order_id=order.id,
                reason="order cancelled",
                cancelled_at=at,
            )
            self._emit("shipment", order.shipment, cancelled, oid)
            refunded = PaymentRefunded(
                order_id=order.id,
                amount=order.total,
                charge_id=f"ch_{oid[:12]}",
                refund_id=f"re_{oid[:12]}",
                refunded_at=at,
            )
            self._emit("payment", order.id, refunded, oid)
            self._release(order, at)
        elif order.fate == "delivered":
            shipped = OrderShipped(
                order_id=order.id,
                shipment_id=order.shipment,
                tracking_number=tracking_number_for(order.shipment),
                shipped_at=self._now(),
            )
            self._emit("order", order.id, shipped, oid)
            delivered_at = self._now()
            delivered = ShipmentDelivered(
                shipment_id=order.shipment, order_id=order.id, delivered_at=delivered_at
            )
            self._emit("shipment", order.shipment, delivered, oid)
            done = OrderDelivered(order_id=order.id, delivered_at=delivered_at)
            self._emit("order", order.id, done, oid)

    def _release(self, order: _Order, at: datetime) -> None:

        for sku, qty in order.lines:
            self.stock[sku][1] -= qty
            released = ReservationReleased(
                sku=sku,
                order_id=order.id,
                quantity=qty,
                reserved=self.stock[sku][1],
                released_at=at,
            )
            self._emit("stock", sku, released, str(order.id))
        lines = tuple(ReservationLine(sku=sku, quantity=qty) for sku, qty in order.lines)
        whole = OrderReservationReleased(order_id=order.id, lines=lines, released_at=at)
        self._emit("reservation", order.id, whole, str(order.id))
