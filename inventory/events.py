"""Events of the inventory context: its published language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar
from uuid import UUID


@dataclass(frozen=True, kw_only=True)
class ProductRegistered:
    event_type: ClassVar[str] = "inventory.ProductRegistered"
    sku: str
    name: str
    price: Decimal
    initial_stock: int
    registered_at: datetime


@dataclass(frozen=True, kw_only=True)
class StockReplenished:
    event_type: ClassVar[str] = "inventory.StockReplenished"
    sku: str
    quantity: int
    on_hand: int
    replenished_at: datetime


# One product's stock held for an order. `reserved` is the product's total held afterwards.
@dataclass(frozen=True, kw_only=True)
class StockReserved:
    event_type: ClassVar[str] = "inventory.StockReserved"
    sku: str
    order_id: UUID
    quantity: int
    reserved: int
    reserved_at: datetime


@dataclass(frozen=True, kw_only=True)
class ReservationReleased:
    event_type: ClassVar[str] = "inventory.ReservationReleased"
    sku: str
    order_id: UUID
    quantity: int
    reserved: int
    released_at: datetime


# The held stock left the warehouse: on hand and reserved both drop by `quantity`.
@dataclass(frozen=True, kw_only=True)
class ReservationCommitted:
    event_type: ClassVar[str] = "inventory.ReservationCommitted"
    sku: str
    order_id: UUID
    quantity: int
    on_hand: int
    reserved: int
    committed_at: datetime


@dataclass(frozen=True, kw_only=True)
class ReservationLine:
    sku: str
    quantity: int


# The order's reservation as a whole, across its products (the OrderReservation stream).
@dataclass(frozen=True, kw_only=True)
class OrderReservationPlaced:
    event_type: ClassVar[str] = "inventory.OrderReservationPlaced"
    order_id: UUID
    lines: tuple[ReservationLine, ...]
    placed_at: datetime


@dataclass(frozen=True, kw_only=True)
class OrderReservationRejected:
    event_type: ClassVar[str] = "inventory.OrderReservationRejected"
    order_id: UUID
    lines: tuple[ReservationLine, ...]
    reason: str
    rejected_at: datetime


@dataclass(frozen=True, kw_only=True)
class OrderReservationReleased:
    event_type: ClassVar[str] = "inventory.OrderReservationReleased"
    order_id: UUID
    lines: tuple[ReservationLine, ...]
    released_at: datetime


@dataclass(frozen=True, kw_only=True)
class OrderReservationCommitted:
    event_type: ClassVar[str] = "inventory.OrderReservationCommitted"
    order_id: UUID
    lines: tuple[ReservationLine, ...]
    committed_at: datetime


EVENTS = (
    ProductRegistered,
    StockReplenished,
    StockReserved,
    ReservationReleased,
    ReservationCommitted,
    OrderReservationPlaced,
    OrderReservationRejected,
    OrderReservationReleased,
    OrderReservationCommitted,
)


# Integration events, on the topic `inventory.events.v1`: stock levels keyed by SKU, the
# outcome of an order's reservation keyed by order id.
TOPIC = "inventory.events.v1"


@dataclass(frozen=True, kw_only=True)
class StockLevelChangedV1:
    event_type: ClassVar[str] = "inventory.stock-level-changed.v1"
    sku: str
    on_hand: int


@dataclass(frozen=True, kw_only=True)
class ReservedLineV1:
    sku: str
    quantity: int


@dataclass(frozen=True, kw_only=True)
class StockReservedV1:
    event_type: ClassVar[str] = "inventory.stock-reserved.v1"
    order_id: UUID
    lines: tuple[ReservedLineV1, ...]


@dataclass(frozen=True, kw_only=True)
class StockReservationFailedV1:
    event_type: ClassVar[str] = "inventory.stock-reservation-failed.v1"
    order_id: UUID
    reason: str


@dataclass(frozen=True, kw_only=True)
class StockReleasedV1:
    event_type: ClassVar[str] = "inventory.stock-released.v1"
    order_id: UUID


INTEGRATION_EVENTS = (
    StockLevelChangedV1,
    StockReservedV1,
    StockReservationFailedV1,
    StockReleasedV1,
)
