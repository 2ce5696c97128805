"""The StockItem aggregate: one product's catalog entry, stock on hand and the stock
held for orders."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any
from uuid import UUID

from inventory.events import (
    ProductRegistered,
    ReservationCommitted,
    ReservationReleased,
    StockReplenished,
    StockReserved,
)
from platform_core.eventsourcing.aggregate import Aggregate, Clock, utc_now
from platform_core.eventsourcing.errors import Conflict, InvalidCommand

SKU_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9-]{0,63}")


class InvalidProduct(InvalidCommand):
    pass


class InvalidRestock(InvalidCommand):
    pass


class InvalidReservation(InvalidCommand):
    pass


class ProductAlreadyRegistered(Conflict):
    pass


class InsufficientStock(Conflict):
    """Fewer units are available than an order asks to reserve."""


@dataclass(frozen=True, kw_only=True)
class Reservation:
    order_id: UUID
    quantity: int


@dataclass(frozen=True, kw_only=True)
class StockState:
    name: str
    price: Decimal
    on_hand: int
    # At most one per order: reserving is idempotent by order id.
    reservations: tuple[Reservation, ...] = ()

    @property
    def reserved(self) -> int:
        return sum(reservation.quantity for reservation in self.reservations)

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def reserved_for(self, order_id: UUID) -> int:
        return next((r.quantity for r in self.reservations if r.order_id == order_id), 0)

    def without(self, order_id: UUID) -> tuple[Reservation, ...]:
        return tuple(r for r in self.reservations if r.order_id != order_id)


class StockItem(Aggregate[StockState]):
    """Stock never goes negative: reserved never exceeds on hand. Price is kept to the cent.

    Reserve, release and commit are idempotent by order id: an order holds one reservation
    per product, and releasing or committing one it does not hold is a no-op."""

    category = "stock"
    state_type = StockState
    snapshot_schema = 2

    @classmethod
    def register(
        cls, *, sku: str, name: str, price: Decimal, initial_stock: int, clock: Clock = utc_now
    ) -> StockItem:
        if not SKU_PATTERN.fullmatch(sku):
            raise InvalidProduct("A SKU is 1-64 upper-case letters, digits or dashes.")
        if not name.strip():
            raise InvalidProduct("A product needs a name.")
        if not price.is_finite() or price <= 0 or price != price.quantize(Decimal("0.01")):
            raise InvalidProduct("A price is positive, in whole cents.")
        if initial_stock < 0:
            raise InvalidProduct("Initial stock cannot be negative.")
        item = cls(sku, clock=clock)
        item._record(
            ProductRegistered(
                sku=sku,
                name=name.strip(),
                price=price,
                initial_stock=initial_stock,
                registered_at=item._now(),
            )
        )
        return item

    def restock(self, quantity: int) -> None:
        if quantity <= 0:
            raise InvalidRestock("A restock adds a positive quantity.")
        self._record(
            StockReplenished(
                sku=self.id,
                quantity=quantity,
                on_hand=self.state.on_hand + quantity,
                replenished_at=self._now(),
            )
        )

    def ensure_reservable(self, order_id: UUID, quantity: int) -> None:
        """Raise InsufficientStock unless `reserve(order_id, quantity)` would succeed."""
        if quantity <= 0:
            raise InvalidReservation("A reservation holds a positive quantity.")
        if self.state.reserved_for(order_id):
            return
        available = self.state.available
        if quantity > available:
            raise InsufficientStock(f"{self.id}: {quantity} requested, {available} available.")

    def reserve(self, order_id: UUID, quantity: int) -> None:
        self.ensure_reservable(order_id, quantity)
        if self.state.reserved_for(order_id):
            return
        self._record(
            StockReserved(
                sku=self.id,
                order_id=order_id,
                quantity=quantity,
                reserved=self.state.reserved + quantity,
                reserved_at=self._now(),
            )
        )

    def release(self, order_id: UUID) -> None:
        quantity = self.state.reserved_for(order_id)
        if not quantity:
            return
        self._record(
            ReservationReleased(
                sku=self.id,
                order_id=order_id,
                quantity=quantity,
                reserved=self.state.reserved - quantity,
                released_at=self._now(),
            )
        )

    def commit(self, order_id: UUID) -> None:
        quantity = self.state.reserved_for(order_id)
        if not quantity:
            return
        self._record(
            ReservationCommitted(
                sku=self.id,
                order_id=order_id,
                quantity=quantity,
                on_hand=self.state.on_hand - quantity,
                reserved=self.state.reserved - quantity,
                committed_at=self._now(),
            )
        )

    def _apply(self, event: Any) -> None:
        match event:
            case ProductRegistered():
                self._state = StockState(
                    name=event.name, price=event.price, on_hand=event.initial_stock
                )
            case StockReplenished():
                self._state = replace(self.state, on_hand=event.on_hand)
            case StockReserved():
                held = Reservation(order_id=event.order_id, quantity=event.quantity)
                self._state = replace(self.state, reservations=(*self.state.reservations, held))
            case ReservationReleased():
                self._state = replace(self.state, reservations=self.state.without(event.order_id))
            case ReservationCommitted():
                self._state = replace(
                    self.state,
                    on_hand=event.on_hand,
                    reservations=self.state.without(event.order_id),
                )
            case _:
                self._unknown(event)
