"""Commands the orders context accepts: its published language."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from uuid import UUID

from orders.events import ShippingAddress


@dataclass(frozen=True, kw_only=True)
class OrderItem:
    sku: str
    quantity: int


@dataclass(frozen=True, kw_only=True)
class PlaceOrder:
    """Handled in the process that takes the order (never sent as a message): its
    `payment_token` goes to the payment token vault and no further."""

    order_id: UUID
    customer_id: int
    items: tuple[OrderItem, ...]
    shipping_address: ShippingAddress
    # Out of the repr, so that no log line or error message that shows the command shows it.
    payment_token: str = field(repr=False)
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class ConfirmOrder:
    order_id: UUID
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class RequestOrderCancellation:
    """Ask to cancel: the order-fulfillment saga decides (the shipment has the last word)."""

    order_id: UUID
    reason: str
    # The customer asking, or None when staff asks.
    requested_by: int | None = None
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class CancelOrder:
    """The decision to cancel (the saga's): the order is cancelled."""

    order_id: UUID
    reason: str
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class RefuseOrderCancellation:
    """The cancellation asked for came too late (the shipment left): the order goes on."""

    order_id: UUID
    reason: str
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class MarkOrderShipped:
    order_id: UUID
    shipment_id: str
    tracking_number: str
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class MarkOrderDelivered:
    order_id: UUID
    command_id: UUID = field(default_factory=uuid.uuid4)
