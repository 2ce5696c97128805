"""Events of the orders context: its published language, stored in the event store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar
from uuid import UUID


@dataclass(frozen=True, kw_only=True)
class OrderLine:
    sku: str
    name: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True, kw_only=True)
class ShippingAddress:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str = ""


@dataclass(frozen=True, kw_only=True)
class OrderPlaced:
    event_type: ClassVar[str] = "orders.OrderPlaced"
    order_id: UUID
    customer_id: int
    lines: tuple[OrderLine, ...]
    shipping_address: ShippingAddress
    payment_token: str
    total: Decimal
    placed_at: datetime


@dataclass(frozen=True, kw_only=True)
class OrderConfirmed:
    event_type: ClassVar[str] = "orders.OrderConfirmed"
    order_id: UUID
    confirmed_at: datetime


@dataclass(frozen=True, kw_only=True)
class OrderCancelled:
    event_type: ClassVar[str] = "orders.OrderCancelled"
    order_id: UUID
    reason: str
    cancelled_at: datetime


@dataclass(frozen=True, kw_only=True)
class OrderCancellationRequested:
    """The customer (or staff) asked to cancel. The order is cancelled once its shipment,
    if it has one, is cancelled; a shipment already dispatched refuses, and so is this."""

    event_type: ClassVar[str] = "orders.OrderCancellationRequested"
    order_id: UUID
    reason: str
    requested_at: datetime


@dataclass(frozen=True, kw_only=True)
class OrderCancellationRefused:
    event_type: ClassVar[str] = "orders.OrderCancellationRefused"
    order_id: UUID
    reason: str
    refused_at: datetime


@dataclass(frozen=True, kw_only=True)
class OrderShipped:
    event_type: ClassVar[str] = "orders.OrderShipped"
    order_id: UUID
    shipment_id: str
    tracking_number: str
    shipped_at: datetime


@dataclass(frozen=True, kw_only=True)
class OrderDelivered:
    event_type: ClassVar[str] = "orders.OrderDelivered"
    order_id: UUID
    delivered_at: datetime


EVENTS = (
    OrderPlaced,
    OrderConfirmed,
    OrderCancellationRequested,
    OrderCancellationRefused,
    OrderCancelled,
    OrderShipped,
    OrderDelivered,
)


# Integration events: the contract other contexts consume over Kafka, on the topic
# `orders.events.v1`. Versioned by type name; a breaking change gets a new version.
TOPIC = "orders.events.v1"


@dataclass(frozen=True, kw_only=True)
class OrderLineV1:
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True, kw_only=True)
class ShippingAddressV1:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str = ""


@dataclass(frozen=True, kw_only=True)
class OrderPlacedV1:
    event_type: ClassVar[str] = "orders.order-placed.v1"
    order_id: UUID
    customer_id: int
    lines: tuple[OrderLineV1, ...]
    total: Decimal
    payment_token: str
    shipping_address: ShippingAddressV1


@dataclass(frozen=True, kw_only=True)
class OrderCancelledV1:
    event_type: ClassVar[str] = "orders.order-cancelled.v1"
    order_id: UUID
    reason: str


@dataclass(frozen=True, kw_only=True)
class OrderConfirmedV1:
    event_type: ClassVar[str] = "orders.order-confirmed.v1"
    order_id: UUID


@dataclass(frozen=True, kw_only=True)
class OrderCancellationRequestedV1:
    event_type: ClassVar[str] = "orders.order-cancellation-requested.v1"
    order_id: UUID
    reason: str


@dataclass(frozen=True, kw_only=True)
class OrderCancellationRefusedV1:
    event_type: ClassVar[str] = "orders.order-cancellation-refused.v1"
    order_id: UUID
    reason: str


INTEGRATION_EVENTS = (
    OrderPlacedV1,
    OrderCancelledV1,
    OrderConfirmedV1,
    OrderCancellationRequestedV1,
    OrderCancellationRefusedV1,
)
