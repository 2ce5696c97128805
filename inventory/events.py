"""Events of the inventory context: its published language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar


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


EVENTS = (ProductRegistered, StockReplenished)


# Integration events, on the topic `inventory.events.v1`.
TOPIC = "inventory.events.v1"


@dataclass(frozen=True, kw_only=True)
class StockLevelChangedV1:
    event_type: ClassVar[str] = "inventory.stock-level-changed.v1"
    sku: str
    on_hand: int


INTEGRATION_EVENTS = (StockLevelChangedV1,)
