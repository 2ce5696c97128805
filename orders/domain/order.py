"""The Order aggregate: placement, confirmation, cancellation, shipping, delivery."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from orders.commands import OrderItem
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
from platform_core.eventsourcing.aggregate import Aggregate, Clock, utc_now
from platform_core.eventsourcing.errors import Conflict, InvalidCommand

MAX_REASON_LENGTH = 500


class OrderStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


@dataclass(frozen=True, kw_only=True)
class ProductQuote:
    """What the catalog says a product is called and costs, at placement time."""

    name: str
    unit_price: Decimal


class Catalog(Protocol):
    """Port: the products orders can be placed for."""

    def quote(self, skus: Sequence[str]) -> Mapping[str, ProductQuote]: ...


class PaymentVault(Protocol):
    """Port: where the customer's card token waits for the payments context, the one
    reader of it; the order keeps only the reference."""

    def deposit(self, *, order_id: UUID, token: str) -> str:
        """Keep `token` for the order's charge; the opaque reference to it."""
        ...


class EmptyOrder(InvalidCommand):
    pass


class InvalidQuantity(InvalidCommand):
    pass


class UnknownProduct(InvalidCommand):
    pass


class InvalidReason(InvalidCommand):
    pass


class OrderCannotBeCancelled(Conflict):
    pass


class InvalidTransition(Conflict):
    pass


@dataclass(frozen=True, kw_only=True)
class OrderState:
    customer_id: int
    status: OrderStatus
    lines: tuple[OrderLine, ...]
    total: Decimal
    cancellation_reason: str = ""
    # The reason of a cancellation asked for and not decided yet.
    cancellation_requested: str = ""


def _valid_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON_LENGTH:
        raise InvalidReason(f"A reason of 1-{MAX_REASON_LENGTH} characters is required.")
    return reason


def _shortened(reason: str) -> str:
    reason = " ".join(reason.split()) or "no reason given"
    if len(reason) <= MAX_REASON_LENGTH:
        return reason
    return reason[: MAX_REASON_LENGTH - 1] + "…"


def _priced_lines(items: Sequence[OrderItem], catalog: Catalog) -> tuple[OrderLine, ...]:
    if not items:
        raise EmptyOrder("An order needs at least one item.")
    if any(item.quantity <= 0 for item in items):
        raise InvalidQuantity("Every quantity must be a positive whole number.")
    quotes = catalog.quote([item.sku for item in items])
    unknown = sorted({item.sku for item in items} - set(quotes))
    if unknown:
        raise UnknownProduct(f"Unknown product(s): {', '.join(unknown)}.")
    return tuple(
        OrderLine(
            sku=item.sku,
            name=quotes[item.sku].name,
            quantity=item.quantity,
            unit_price=quotes[item.sku].unit_price,
        )
        for item in items
    )


class Order(Aggregate[OrderState]):
    """An order moves forward only: pending -> confirmed -> shipped -> delivered, or to
    cancelled from pending or confirmed.

    A customer's cancellation is a request until the order-fulfillment saga decides: the
    shipment has the last word, since a carrier may take the parcel at any moment. The
    saga then cancels the order, or refuses the request and the order goes on."""

    category = "order"
    state_type = OrderState

    @classmethod
    def place(
        cls,
        *,
        order_id: UUID,
        customer_id: int,
        items: Sequence[OrderItem],
        shipping_address: ShippingAddress,
        payment_ref: str,
        catalog: Catalog,
        clock: Clock = utc_now,
    ) -> Order:
        lines = _priced_lines(items, catalog)
        order = cls(str(order_id), clock=clock)
        order._record(
            OrderPlaced(
                order_id=order_id,
                customer_id=customer_id,
                lines=lines,
                shipping_address=shipping_address,
                payment_ref=payment_ref,
                total=sum((line.unit_price * line.quantity for line in lines), Decimal("0")),
                placed_at=order._now(),
            )
        )
        return order

    @property
    def order_id(self) -> UUID:
        return UUID(self.id)

    def confirm(self) -> None:
        """Confirm a pending order. A no-op otherwise: a repeat, or a confirmation that
        arrives after the customer cancelled (the cancellation has undone the rest)."""
        if self.state.status is not OrderStatus.PENDING:
            return
        self._record(OrderConfirmed(order_id=self.order_id, confirmed_at=self._now()))

    def request_cancellation(self, reason: str) -> None:
        reason = _valid_reason(reason)
        status = self.state.status
        if status is OrderStatus.CANCELLED or self.state.cancellation_requested:
            return
        if status not in (OrderStatus.PENDING, OrderStatus.CONFIRMED):
            raise OrderCannotBeCancelled(f"An order that is {status} can no longer be cancelled.")
        self._record(
            OrderCancellationRequested(
                order_id=self.order_id, reason=reason, requested_at=self._now()
            )
        )

    def cancel(self, reason: str) -> None:
        """The decision to cancel, once nothing can ship any more. Never refused for its
        reason (a decision already taken, its reason written by the system: a shortage
        over many lines runs long): an overlong one is shortened."""
        reason = _shortened(reason)
        status = self.state.status
        if status is OrderStatus.CANCELLED:
            return
        if status not in (OrderStatus.PENDING, OrderStatus.CONFIRMED):
            raise OrderCannotBeCancelled(f"An order that is {status} can no longer be cancelled.")
        self._record(
            OrderCancelled(order_id=self.order_id, reason=reason, cancelled_at=self._now())
        )

    def refuse_cancellation(self, reason: str) -> None:
        if not self.exists or not self.state.cancellation_requested:
            return
        self._record(
            OrderCancellationRefused(
                order_id=self.order_id, reason=_shortened(reason), refused_at=self._now()
            )
        )

    def mark_shipped(self, *, shipment_id: str, tracking_number: str) -> None:
        """The carrier has the parcel: shipped. A pending order is confirmed first (its
        shipment is booked only once it is paid for; the confirmation is still on its
        way), so the saga hears of it as it would have."""
        status = self.state.status
        if status is OrderStatus.SHIPPED:
            return
        if status not in (OrderStatus.PENDING, OrderStatus.CONFIRMED):
            raise InvalidTransition(f"Cannot ship an order that is {status}.")
        self.confirm()
        self._record(
            OrderShipped(
                order_id=self.order_id,
                shipment_id=shipment_id,
                tracking_number=tracking_number,
                shipped_at=self._now(),
            )
        )

    def mark_delivered(self) -> None:
        if self.state.status is OrderStatus.DELIVERED:
            return
        self._require(OrderStatus.SHIPPED, "deliver")
        self._record(OrderDelivered(order_id=self.order_id, delivered_at=self._now()))

    def _require(self, status: OrderStatus, action: str) -> None:
        if self.state.status is not status:
            raise InvalidTransition(f"Cannot {action} an order that is {self.state.status}.")

    def _apply(self, event: Any) -> None:
        match event:
            case OrderPlaced():
                self._state = OrderState(
                    customer_id=event.customer_id,
                    status=OrderStatus.PENDING,
                    lines=event.lines,
                    total=event.total,
                )
            case OrderConfirmed():
                self._state = replace(self.state, status=OrderStatus.CONFIRMED)
            case OrderCancellationRequested():
                self._state = replace(self.state, cancellation_requested=event.reason)
            case OrderCancellationRefused():
                self._state = replace(self.state, cancellation_requested="")
            case OrderCancelled():
                self._state = replace(
                    self.state,
                    status=OrderStatus.CANCELLED,
                    cancellation_reason=event.reason,
                    cancellation_requested="",
                )
            case OrderShipped():
                self._state = replace(self.state, status=OrderStatus.SHIPPED)
            case OrderDelivered():
                self._state = replace(self.state, status=OrderStatus.DELIVERED)
            case _:
                self._unknown(event)
