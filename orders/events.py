"""Events of the orders context: its published language, stored in the event store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
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
    """Schema 2: the card travels as `payment_ref`, the payments context's reference to
    the token it keeps in its vault; schema 1 stored the token itself (see UPCASTERS)."""

    event_type: ClassVar[str] = "orders.OrderPlaced"
    schema_version: ClassVar[int] = 2
    order_id: UUID
    customer_id: int
    lines: tuple[OrderLine, ...]
    shipping_address: ShippingAddress
    payment_ref: str
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


def _payment_token_dropped(document: dict[str, Any]) -> dict[str, Any]:
    """OrderPlaced 1 -> 2: a stored token is never read back; no reference stands for it."""
    kept = {name: value for name, value in document.items() if name != "payment_token"}
    return {**kept, "payment_ref": ""}


# (event type, the schema version it reads, upcaster to the next version)
UPCASTERS = ((OrderPlaced.event_type, 1, _payment_token_dropped),)

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
class OrderPlacedV2:
    """The card as the payment token vault's reference: only the payments context can
    turn it into a token. Replaces `orders.order-placed.v1`, which carried the token and is
    no longer published."""

    event_type: ClassVar[str] = "orders.order-placed.v2"
    order_id: UUID
    customer_id: int
    lines: tuple[OrderLineV1, ...]
    total: Decimal
    payment_ref: str
    shipping_address: ShippingAddressV1


# The retired type the order-fulfillment saga still starts from, for the messages sent
# before the upgrade (their token is ignored; `manage.py scrub_payment_tokens` turns the
# ones still stored into references).
ORDER_PLACED_V1 = "orders.order-placed.v1"


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
    OrderPlacedV2,
    OrderCancelledV1,
    OrderConfirmedV1,
    OrderCancellationRequestedV1,
    OrderCancellationRefusedV1,
)
