"""The built-in fake carrier: books any parcel, with a tracking number that depends only
on the shipment id (so a retried booking gets the same one)."""

from __future__ import annotations

import hashlib

from shipping.events import Address


def tracking_number_for(shipment_id: str) -> str:
    """`TRK` and 10 digits, the same for the same shipment id in every process."""
    digest = hashlib.sha256(shipment_id.encode()).digest()
    return f"TRK{int.from_bytes(digest[:8], 'big') % 10**10:010d}"


class FakeCarrier:
    """A `Carrier` that books everything and remembers the shipment ids it booked."""

    def __init__(self) -> None:
        self.bookings: list[str] = []

    def book(self, *, shipment_id: str, address: Address) -> str:
        self.bookings.append(shipment_id)
        return tracking_number_for(shipment_id)
