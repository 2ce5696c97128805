"""The StockItem aggregate: one product's catalog entry, its stock on hand and the total
held for orders.

Which order holds how much of the product is the OrderReservation's to know (one small
stream per order), so a StockItem's state, its snapshot and its load stay the same size
however many orders hold stock."""

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


class ReleasedMoreThanHeld(InvalidCommand):
    """A release or commit names more units than the product holds for all orders: its
    caller's record of the order's hold disagrees with the stock."""


@dataclass(frozen=True, kw_only=True)
class StockState:
    name: str
    price: Decimal
    on_hand: int
    reserved: int = 0  # held for orders, all of them together

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class StockItem(Aggregate[StockState]):
    """Stock never goes negative: reserved never exceeds on hand. Price is kept to the cent.

    Reserve, release and commit take the order's quantity from the caller, the
    OrderReservation, which holds an order's lines and makes each of them happen once per
    order; the StockItem keeps the totals."""

    category = "stock"
    state_type = StockState
    # 3: totals only (2 kept every reservation).
    snapshot_schema = 3

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

    def ensure_reservable(self, quantity: int) -> None:
        """Raise InsufficientStock unless `reserve(order_id, quantity)` would succeed."""
        if quantity <= 0:
            raise InvalidReservation("A reservation holds a positive quantity.")
        available = self.state.available
        if quantity > available:
            raise InsufficientStock(f"{self.id}: {quantity} requested, {available} available.")

    def reserve(self, order_id: UUID, quantity: int) -> None:
        self.ensure_reservable(quantity)
        self._record(
            StockReserved(
                sku=self.id,
                order_id=order_id,
                quantity=quantity,
                reserved=self.state.reserved + quantity,
                reserved_at=self._now(),
            )
        )

    def release(self, order_id: UUID, quantity: int) -> None:
        """Give back the `quantity` the order holds."""
        self._ensure_held(quantity)
        self._record(
            ReservationReleased(
                sku=self.id,
                order_id=order_id,
                quantity=quantity,
                reserved=self.state.reserved - quantity,
                released_at=self._now(),
            )
        )

    def commit(self, order_id: UUID, quantity: int) -> None:
        """The `quantity` the order holds leaves the warehouse."""
        self._ensure_held(quantity)
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

    def _ensure_held(self, quantity: int) -> None:
        if quantity <= 0:
            raise InvalidReservation("A reservation holds a positive quantity.")
        if quantity > self.state.reserved:
            raise ReleasedMoreThanHeld(
                f"{self.id}: {quantity} to give back, {self.state.reserved} held in all."
            )

    def _apply(self, event: Any) -> None:
        match event:
            case ProductRegistered():
                self._state = StockState(
                    name=event.name, price=event.price, on_hand=event.initial_stock
                )
            case StockReplenished():
                self._state = replace(self.state, on_hand=event.on_hand)
            case StockReserved() | ReservationReleased():
                self._state = replace(self.state, reserved=event.reserved)
            case ReservationCommitted():
                self._state = replace(self.state, on_hand=event.on_hand, reserved=event.reserved)
            case _:
                self._unknown(event)
