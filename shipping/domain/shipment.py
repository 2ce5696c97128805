"""The Shipment aggregate and the carrier port that books it."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from platform_core.eventsourcing.aggregate import Aggregate, Clock, utc_now
from platform_core.eventsourcing.errors import Conflict, InvalidCommand
from shipping.events import (
    Address,
    ShipmentCancellationRefused,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentDispatched,
)

SHIPMENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_REASON_LENGTH = 500


class ShipmentStatus(StrEnum):
    CREATED = "created"
    CANCELLED = "cancelled"
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"


class Carrier(Protocol):
    """Port: the carrier that takes the parcel; booking gives its tracking number."""

    def book(self, *, shipment_id: str, address: Address) -> str: ...


class InvalidShipment(InvalidCommand):
    pass


class ShipmentIdTaken(Conflict):
    pass


class InvalidTransition(Conflict):
    pass


@dataclass(frozen=True, kw_only=True)
class ShipmentState:
    order_id: UUID
    status: ShipmentStatus
    # None for a shipment cancelled before it was ever booked (see `Shipment.void`).
    address: Address | None
    tracking_number: str
    cancellation_reason: str = ""


def _validate(shipment_id: str, address: Address) -> None:
    if not SHIPMENT_ID_PATTERN.fullmatch(shipment_id):
        raise InvalidShipment("A shipment id is 1-64 letters, digits, dashes or underscores.")
    required = {
        "name": address.name,
        "line1": address.line1,
        "city": address.city,
        "postal_code": address.postal_code,
        "country": address.country,
    }
    missing = [field for field, value in required.items() if not value.strip()]
    if missing:
        raise InvalidShipment(f"The address needs {', '.join(missing)}.")


class Shipment(Aggregate[ShipmentState]):
    """Forward only: created -> dispatched -> delivered, or created -> cancelled.

    Every step is idempotent: repeating the step a shipment has taken records nothing."""

    category = "shipment"
    state_type = ShipmentState

    @classmethod
    def create(
        cls,
        *,
        shipment_id: str,
        order_id: UUID,
        address: Address,
        carrier: Carrier,
        clock: Clock = utc_now,
    ) -> Shipment:
        _validate(shipment_id, address)
        shipment = cls(shipment_id, clock=clock)
        shipment._record(
            ShipmentCreated(
                shipment_id=shipment_id,
                order_id=order_id,
                address=address,
                tracking_number=carrier.book(shipment_id=shipment_id, address=address),
                created_at=shipment._now(),
            )
        )
        return shipment

    @classmethod
    def void(
        cls, *, shipment_id: str, order_id: UUID, reason: str, clock: Clock = utc_now
    ) -> Shipment:
        """Cancel a shipment that was never booked: a compensation that overtook the
        booking. A booking arriving afterwards then finds it cancelled and does nothing."""
        shipment = cls(shipment_id, clock=clock)
        shipment._record(
            ShipmentCancelled(
                shipment_id=shipment_id,
                order_id=order_id,
                reason=reason,
                cancelled_at=shipment._now(),
            )
        )
        return shipment

    def ensure_for(self, order_id: UUID) -> None:
        """A repeated create is a no-op only when it is for the same order."""
        if self.state.order_id != order_id:
            raise ShipmentIdTaken(f"Shipment {self.id} belongs to another order.")

    def cancel(self, reason: str = "") -> None:
        """Cancel a booked shipment; once dispatched, record the refusal instead."""
        reason = reason.strip()
        if len(reason) > MAX_REASON_LENGTH:
            raise InvalidShipment(f"A reason is at most {MAX_REASON_LENGTH} characters.")
        status = self.state.status
        if status is ShipmentStatus.CANCELLED:
            return
        if status is not ShipmentStatus.CREATED:
            # The carrier has it: an answer, not an error (the saga waits for one).
            self._record(
                ShipmentCancellationRefused(
                    shipment_id=self.id,
                    order_id=self.state.order_id,
                    reason=f"the shipment is {status}",
                    refused_at=self._now(),
                )
            )
            return
        self._record(
            ShipmentCancelled(
                shipment_id=self.id,
                order_id=self.state.order_id,
                reason=reason,
                cancelled_at=self._now(),
            )
        )

    def dispatch(self) -> None:
        if self.state.status in (ShipmentStatus.DISPATCHED, ShipmentStatus.DELIVERED):
            return
        self._require(ShipmentStatus.CREATED, "dispatch")
        self._record(
            ShipmentDispatched(
                shipment_id=self.id,
                order_id=self.state.order_id,
                tracking_number=self.state.tracking_number,
                dispatched_at=self._now(),
            )
        )

    def deliver(self) -> None:
        if self.state.status is ShipmentStatus.DELIVERED:
            return
        self._require(ShipmentStatus.DISPATCHED, "deliver")
        self._record(
            ShipmentDelivered(
                shipment_id=self.id, order_id=self.state.order_id, delivered_at=self._now()
            )
        )

    def _require(self, status: ShipmentStatus, action: str) -> None:
        if self.state.status is not status:
            raise InvalidTransition(f"Cannot {action} a shipment that is {self.state.status}.")

    def _apply(self, event: Any) -> None:
        match event:
            case ShipmentCreated():
                self._state = ShipmentState(
                    order_id=event.order_id,
                    status=ShipmentStatus.CREATED,
                    address=event.address,
                    tracking_number=event.tracking_number,
                )
            case ShipmentCancelled():
                before = self._state or ShipmentState(
                    order_id=event.order_id,
                    status=ShipmentStatus.CANCELLED,
                    address=None,
                    tracking_number="",
                )
                self._state = replace(
                    before, status=ShipmentStatus.CANCELLED, cancellation_reason=event.reason
                )
            case ShipmentDispatched():
                self._state = replace(self.state, status=ShipmentStatus.DISPATCHED)
            case ShipmentDelivered():
                self._state = replace(self.state, status=ShipmentStatus.DELIVERED)
            case ShipmentCancellationRefused():
                pass  # an answer given; the shipment is as it was
            case _:
                self._unknown(event)
