"""Commands the shipping context accepts: its published language."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from uuid import UUID

from shipping.events import Address


@dataclass(frozen=True, kw_only=True)
class CreateShipment:
    """Book a shipment for the order. A repeat for the same order is a no-op."""

    order_id: UUID
    shipment_id: str
    address: Address
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class CancelShipment:
    shipment_id: str
    reason: str = ""
    # Given by a saga compensating a booking that may never have happened.
    order_id: UUID | None = None
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class DispatchShipment:
    shipment_id: str
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class DeliverShipment:
    shipment_id: str
    command_id: UUID = field(default_factory=uuid.uuid4)
