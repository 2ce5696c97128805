"""What the orders context publishes on Kafka, translated from its domain events."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from orders.events import (
    OrderCancelled,
    OrderCancelledV1,
    OrderConfirmed,
    OrderConfirmedV1,
    OrderLineV1,
    OrderPlaced,
    OrderPlacedV1,
    ShippingAddressV1,
)

SOURCE = "/orders"


def outbound(event: Any) -> list[Any]:
    """The integration events a domain event is published as (often none)."""
    match event:
        case OrderPlaced():
            lines = tuple(
                OrderLineV1(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price)
                for line in event.lines
            )
            return [
                OrderPlacedV1(
                    order_id=event.order_id,
                    customer_id=event.customer_id,
                    lines=lines,
                    total=event.total,
                    payment_token=event.payment_token,
                    shipping_address=ShippingAddressV1(**asdict(event.shipping_address)),
                )
            ]
        case OrderCancelled():
            return [OrderCancelledV1(order_id=event.order_id, reason=event.reason)]
        case OrderConfirmed():
            return [OrderConfirmedV1(order_id=event.order_id)]
    return []
