"""What the orders context publishes on Kafka, translated from its domain events."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from orders import events as orders_events
from orders.commands import MarkOrderDelivered, MarkOrderShipped
from orders.events import (
    OrderCancellationRefused,
    OrderCancellationRefusedV1,
    OrderCancellationRequested,
    OrderCancellationRequestedV1,
    OrderCancelled,
    OrderCancelledV1,
    OrderConfirmed,
    OrderConfirmedV1,
    OrderLineV1,
    OrderPlaced,
    OrderPlacedV2,
    ShippingAddressV1,
)
from platform_core.eventsourcing.serialization import from_json
from platform_core.messaging.envelope import Envelope
from shipping.events import ShipmentDeliveredV1, ShipmentDispatchedV1

SOURCE = "/orders"
TOPIC = orders_events.TOPIC


def outbound(event: Any) -> list[Any]:
    """The integration events a domain event is published as (often none)."""
    match event:
        case OrderPlaced():
            lines = tuple(
                OrderLineV1(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price)
                for line in event.lines
            )
            return [
                OrderPlacedV2(
                    order_id=event.order_id,
                    customer_id=event.customer_id,
                    lines=lines,
                    total=event.total,
                    payment_ref=event.payment_ref,
                    shipping_address=ShippingAddressV1(**asdict(event.shipping_address)),
                )
            ]
        case OrderCancelled():
            return [OrderCancelledV1(order_id=event.order_id, reason=event.reason)]
        case OrderConfirmed():
            return [OrderConfirmedV1(order_id=event.order_id)]
        case OrderCancellationRequested():
            return [OrderCancellationRequestedV1(order_id=event.order_id, reason=event.reason)]
        case OrderCancellationRefused():
            return [OrderCancellationRefusedV1(order_id=event.order_id, reason=event.reason)]
    return []


def inbound(handle: Callable[[Any], Any]) -> dict[str, Callable[[Envelope], Any]]:
    """What orders does with other contexts' events: follow its shipment."""

    def shipped(envelope: Envelope) -> None:
        event = from_json(envelope.data, ShipmentDispatchedV1)
        handle(
            MarkOrderShipped(
                order_id=event.order_id,
                shipment_id=event.shipment_id,
                tracking_number=event.tracking_number,
                command_id=uuid.uuid5(event.order_id, envelope.id),
            )
        )

    def delivered(envelope: Envelope) -> None:
        event = from_json(envelope.data, ShipmentDeliveredV1)
        handle(
            MarkOrderDelivered(
                order_id=event.order_id, command_id=uuid.uuid5(event.order_id, envelope.id)
            )
        )

    return {
        ShipmentDispatchedV1.event_type: shipped,
        ShipmentDeliveredV1.event_type: delivered,
    }
