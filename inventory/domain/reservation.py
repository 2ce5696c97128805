"""The OrderReservation aggregate: one order's hold on stock across all its products.

Why a second aggregate: an order's lines span several StockItems, and the saga needs one
answer per order, published even when the answer is no. So this stream, keyed by order id,
records the outcome (placed or rejected) and its later fate (released or committed), and
its events become the integration events `inventory.stock-reserved.v1`,
`inventory.stock-reservation-failed.v1` and `inventory.stock-released.v1`.

All lines or none: `place` asks every StockItem first (`ensure_reservable`) and reserves
only when all of them can; a shortage is recorded as `OrderReservationRejected` with its
reason, not raised, so that the refusal commits and is published. The handler saves the
StockItems and this aggregate in the one transaction the bus opens, so a failure while
saving (a concurrent write) leaves none of them changed.

Idempotent by order id: an order's reservation is decided once (a repeated `place` finds
the stream and does nothing). Releasing a reservation never placed records the release
anyway, so a reserve command that arrives after its own compensation is a no-op and
cannot hold stock for a cancelled order.

The per-order holds live here, not on the StockItems: this stream's lines say how much
each product holds for the order, and release and commit hand each StockItem its line's
quantity, once, as the status moves on. A StockItem keeps only its totals, so its load
does not grow with the number of orders holding it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from inventory.domain.stock import (
    InsufficientStock,
    InvalidReservation,
    StockItem,
)
from inventory.events import (
    OrderReservationCommitted,
    OrderReservationPlaced,
    OrderReservationRejected,
    OrderReservationReleased,
    ReservationLine,
)
from platform_core.eventsourcing.aggregate import Aggregate, Clock, utc_now
from platform_core.eventsourcing.errors import Conflict


class ReservationStatus(StrEnum):
    RESERVED = "reserved"
    REJECTED = "rejected"
    RELEASED = "released"
    COMMITTED = "committed"


class ReservationAlreadyCommitted(Conflict):
    pass


class NothingReserved(Conflict):
    pass


@dataclass(frozen=True, kw_only=True)
class ReservationState:
    status: ReservationStatus
    lines: tuple[ReservationLine, ...]

    @property
    def skus(self) -> tuple[str, ...]:
        return tuple(line.sku for line in self.lines)


def merged_lines(lines: Sequence[ReservationLine]) -> tuple[ReservationLine, ...]:
    """One line per SKU (quantities of repeated SKUs added up), in first-seen order."""
    if not lines:
        raise InvalidReservation("A reservation needs at least one line.")
    if any(line.quantity <= 0 for line in lines):
        raise InvalidReservation("Every quantity must be a positive whole number.")
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.sku] = totals.get(line.sku, 0) + line.quantity
    return tuple(ReservationLine(sku=sku, quantity=quantity) for sku, quantity in totals.items())


def _shortages(lines: Iterable[ReservationLine], stock: Mapping[str, StockItem]) -> list[str]:
    shortages = []
    for line in lines:
        item = stock.get(line.sku)
        if item is None:
            shortages.append(f"{line.sku}: no such product.")
            continue
        try:
            item.ensure_reservable(line.quantity)
        except InsufficientStock as shortage:
            shortages.append(shortage.message)
    return shortages


class OrderReservation(Aggregate[ReservationState]):
    """reserved -> released | committed; or rejected. Never reopened."""

    category = "reservation"
    state_type = ReservationState

    @classmethod
    def place(
        cls,
        *,
        order_id: UUID,
        lines: Sequence[ReservationLine],
        stock: Mapping[str, StockItem],
        clock: Clock = utc_now,
    ) -> OrderReservation:
        """Reserve every line on its StockItem (`stock`, by SKU; an unknown SKU is absent),
        or record why not, changing none."""
        wanted = merged_lines(lines)
        reservation = cls(str(order_id), clock=clock)
        shortages = _shortages(wanted, stock)
        if shortages:
            reason = "Insufficient stock: " + " ".join(shortages)
            reservation._record(
                OrderReservationRejected(
                    order_id=order_id, lines=wanted, reason=reason, rejected_at=reservation._now()
                )
            )
            return reservation
        for line in wanted:
            stock[line.sku].reserve(order_id, line.quantity)
        reservation._record(
            OrderReservationPlaced(order_id=order_id, lines=wanted, placed_at=reservation._now())
        )
        return reservation

    @property
    def order_id(self) -> UUID:
        return UUID(self.id)

    @property
    def skus(self) -> tuple[str, ...]:
        return self.state.skus if self.exists else ()

    def release(self, stock: Mapping[str, StockItem]) -> None:
        """Give the held stock back (`stock` holds the StockItem of every line, by SKU). A
        no-op unless reserved, but for a reservation never placed, whose release is
        recorded so that a late `place` will not hold stock."""
        status = self.state.status if self.exists else None
        if status is ReservationStatus.COMMITTED:
            raise ReservationAlreadyCommitted(
                f"Order {self.id}'s stock has been dispatched; it cannot be released."
            )
        if status in (ReservationStatus.RELEASED, ReservationStatus.REJECTED):
            return
        lines = self.state.lines if self.exists else ()
        for line in lines:
            stock[line.sku].release(self.order_id, line.quantity)
        self._record(
            OrderReservationReleased(order_id=self.order_id, lines=lines, released_at=self._now())
        )

    def commit(self, stock: Mapping[str, StockItem]) -> None:
        """The order was dispatched: what it holds leaves the stock on hand (`stock` holds
        the StockItem of every line, by SKU)."""
        status = self.state.status if self.exists else None
        if status is ReservationStatus.COMMITTED:
            return
        if status is not ReservationStatus.RESERVED:
            raise NothingReserved(f"Order {self.id} holds no stock to commit.")
        for line in self.state.lines:
            stock[line.sku].commit(self.order_id, line.quantity)
        self._record(
            OrderReservationCommitted(
                order_id=self.order_id, lines=self.state.lines, committed_at=self._now()
            )
        )

    def _apply(self, event: Any) -> None:
        match event:
            case OrderReservationPlaced():
                self._state = ReservationState(status=ReservationStatus.RESERVED, lines=event.lines)
            case OrderReservationRejected():
                self._state = ReservationState(status=ReservationStatus.REJECTED, lines=event.lines)
            case OrderReservationReleased():
                self._state = ReservationState(status=ReservationStatus.RELEASED, lines=event.lines)
            case OrderReservationCommitted():
                self._state = ReservationState(
                    status=ReservationStatus.COMMITTED, lines=event.lines
                )
            case _:
                self._unknown(event)
