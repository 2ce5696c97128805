"""The StockItem aggregate: one product's catalog entry and stock on hand."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from inventory.events import ProductRegistered, StockReplenished
from platform_core.aggregate import Aggregate
from platform_core.errors import Conflict, InvalidCommand

SKU_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9-]{0,63}")


class InvalidProduct(InvalidCommand):
    pass


class InvalidRestock(InvalidCommand):
    pass


class ProductAlreadyRegistered(Conflict):
    pass


@dataclass(frozen=True, kw_only=True)
class StockState:
    name: str
    price: Decimal
    on_hand: int


class StockItem(Aggregate[StockState]):
    """Stock on hand never goes negative; price is kept to the cent."""

    category = "stock"
    state_type = StockState

    @classmethod
    def register(cls, *, sku: str, name: str, price: Decimal, initial_stock: int) -> StockItem:
        if not SKU_PATTERN.fullmatch(sku):
            raise InvalidProduct("A SKU is 1-64 upper-case letters, digits or dashes.")
        if not name.strip():
            raise InvalidProduct("A product needs a name.")
        if not price.is_finite() or price <= 0 or price != price.quantize(Decimal("0.01")):
            raise InvalidProduct("A price is positive, in whole cents.")
        if initial_stock < 0:
            raise InvalidProduct("Initial stock cannot be negative.")
        item = cls(sku)
        item._record(
            ProductRegistered(
                sku=sku,
                name=name.strip(),
                price=price,
                initial_stock=initial_stock,
                registered_at=datetime.now(UTC),
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
                replenished_at=datetime.now(UTC),
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
