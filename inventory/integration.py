"""What the inventory context publishes on Kafka, translated from its domain events."""

from __future__ import annotations

from typing import Any

from inventory.events import ProductRegistered, StockLevelChangedV1, StockReplenished

SOURCE = "/inventory"


def outbound(event: Any) -> list[Any]:
    match event:
        case ProductRegistered():
            return [StockLevelChangedV1(sku=event.sku, on_hand=event.initial_stock)]
        case StockReplenished():
            return [StockLevelChangedV1(sku=event.sku, on_hand=event.on_hand)]
    return []
