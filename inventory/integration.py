"""What the inventory context publishes on Kafka, translated from its domain events.

Stock levels are keyed by SKU (StockItem streams); the outcome of an order's reservation
is keyed by order id (OrderReservation streams), which is what the fulfillment saga
follows. Committing a reservation is published as the stock level it leaves."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from inventory import events as inventory_events
from inventory.commands import CommitStock
from inventory.events import (
    OrderReservationPlaced,
    OrderReservationRejected,
    OrderReservationReleased,
    ProductRegistered,
    ReservationCommitted,
    ReservedLineV1,
    StockLevelChangedV1,
    StockReleasedV1,
    StockReplenished,
    StockReservationFailedV1,
    StockReservedV1,
)
from platform_core.eventsourcing.serialization import from_json
from platform_core.messaging.envelope import Envelope
from shipping.events import ShipmentDispatchedV1

SOURCE = "/inventory"
TOPIC = inventory_events.TOPIC


def outbound(event: Any) -> list[Any]:
    match event:
        case ProductRegistered():
            return [StockLevelChangedV1(sku=event.sku, on_hand=event.initial_stock)]
        case StockReplenished() | ReservationCommitted():
            return [StockLevelChangedV1(sku=event.sku, on_hand=event.on_hand)]
        case OrderReservationPlaced():
            lines = tuple(
                ReservedLineV1(sku=line.sku, quantity=line.quantity) for line in event.lines
            )
            return [StockReservedV1(order_id=event.order_id, lines=lines)]
        case OrderReservationRejected():
            return [StockReservationFailedV1(order_id=event.order_id, reason=event.reason)]
        case OrderReservationReleased():
            return [StockReleasedV1(order_id=event.order_id)]
    return []


def inbound(handle: Callable[[Any], Any]) -> dict[str, Callable[[Envelope], Any]]:
    """What inventory does with other contexts' events: stock leaves when it ships."""

    def dispatched(envelope: Envelope) -> None:
        event = from_json(envelope.data, ShipmentDispatchedV1)
        handle(
            CommitStock(order_id=event.order_id, command_id=uuid.uuid5(event.order_id, envelope.id))
        )

    return {ShipmentDispatchedV1.event_type: dispatched}
