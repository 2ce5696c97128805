"""Events of the shipping context: its published language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from uuid import UUID


@dataclass(frozen=True, kw_only=True)
class Address:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str = ""


@dataclass(frozen=True, kw_only=True)
class ShipmentCreated:
    event_type: ClassVar[str] = "shipping.ShipmentCreated"
    shipment_id: str
    order_id: UUID
    address: Address
    tracking_number: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class ShipmentCancelled:
    event_type: ClassVar[str] = "shipping.ShipmentCancelled"
    shipment_id: str
    order_id: UUID
    reason: str
    cancelled_at: datetime


@dataclass(frozen=True, kw_only=True)
class ShipmentDispatched:
    event_type: ClassVar[str] = "shipping.ShipmentDispatched"
    shipment_id: str
    order_id: UUID
    tracking_number: str
    dispatched_at: datetime


@dataclass(frozen=True, kw_only=True)
class ShipmentDelivered:
    event_type: ClassVar[str] = "shipping.ShipmentDelivered"
    shipment_id: str
    order_id: UUID
    delivered_at: datetime


@dataclass(frozen=True, kw_only=True)
class ShipmentCancellationRefused:
    """A cancellation asked for after the carrier took the parcel: too late, the shipment
    stands. Recorded so that whoever asked gets the answer."""

    event_type: ClassVar[str] = "shipping.ShipmentCancellationRefused"
    shipment_id: str
    order_id: UUID
    reason: str
    refused_at: datetime


EVENTS = (
    ShipmentCreated,
    ShipmentCancelled,
    ShipmentDispatched,
    ShipmentDelivered,
    ShipmentCancellationRefused,
)


# Integration events, on the topic `shipping.events.v1`, keyed by shipment id.
TOPIC = "shipping.events.v1"


@dataclass(frozen=True, kw_only=True)
class ShipmentCreatedV1:
    event_type: ClassVar[str] = "shipping.shipment-created.v1"
    shipment_id: str
    order_id: UUID
    tracking_number: str


@dataclass(frozen=True, kw_only=True)
class ShipmentCancelledV1:
    event_type: ClassVar[str] = "shipping.shipment-cancelled.v1"
    shipment_id: str
    order_id: UUID
    reason: str


@dataclass(frozen=True, kw_only=True)
class ShipmentDispatchedV1:
    event_type: ClassVar[str] = "shipping.shipment-dispatched.v1"
    shipment_id: str
    order_id: UUID
    tracking_number: str


@dataclass(frozen=True, kw_only=True)
class ShipmentDeliveredV1:
    event_type: ClassVar[str] = "shipping.shipment-delivered.v1"
    shipment_id: str
    order_id: UUID


@dataclass(frozen=True, kw_only=True)
class ShipmentCancellationRefusedV1:
    event_type: ClassVar[str] = "shipping.shipment-cancellation-refused.v1"
    shipment_id: str
    order_id: UUID
    reason: str


INTEGRATION_EVENTS = (
    ShipmentCreatedV1,
    ShipmentCancelledV1,
    ShipmentDispatchedV1,
    ShipmentDeliveredV1,
    ShipmentCancellationRefusedV1,
)
