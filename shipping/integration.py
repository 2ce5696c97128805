"""What the shipping context publishes on Kafka, translated from its domain events."""

from __future__ import annotations

from typing import Any

from shipping import events as shipping_events
from shipping.events import (
    ShipmentCancellationRefused,
    ShipmentCancellationRefusedV1,
    ShipmentCancelled,
    ShipmentCancelledV1,
    ShipmentCreated,
    ShipmentCreatedV1,
    ShipmentDelivered,
    ShipmentDeliveredV1,
    ShipmentDispatched,
    ShipmentDispatchedV1,
)

SOURCE = "/shipping"
TOPIC = shipping_events.TOPIC


def outbound(event: Any) -> list[Any]:
    match event:
        case ShipmentCreated():
            return [
                ShipmentCreatedV1(
                    shipment_id=event.shipment_id,
                    order_id=event.order_id,
                    tracking_number=event.tracking_number,
                )
            ]
        case ShipmentCancelled():
            return [
                ShipmentCancelledV1(
                    shipment_id=event.shipment_id, order_id=event.order_id, reason=event.reason
                )
            ]
        case ShipmentDispatched():
            return [
                ShipmentDispatchedV1(
                    shipment_id=event.shipment_id,
                    order_id=event.order_id,
                    tracking_number=event.tracking_number,
                )
            ]
        case ShipmentDelivered():
            return [ShipmentDeliveredV1(shipment_id=event.shipment_id, order_id=event.order_id)]
        case ShipmentCancellationRefused():
            return [
                ShipmentCancellationRefusedV1(
                    shipment_id=event.shipment_id, order_id=event.order_id, reason=event.reason
                )
            ]
    return []
