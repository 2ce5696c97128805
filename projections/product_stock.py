"""The product stock read model: what GET /api/products/ shows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inventory.events import ProductRegistered, StockReplenished
from platform_core.eventstore import RecordedEvent
from platform_core.projector import EventHandler, Projection
from projections.models import ProductStock


class ProductStockProjection(Projection):
    name = "product_stock"

    def handlers(self) -> Mapping[type[Any], EventHandler]:
        return {
            ProductRegistered: self.on_product_registered,
            StockReplenished: self.on_stock_replenished,
        }

    def on_product_registered(self, event: ProductRegistered, recorded: RecordedEvent) -> None:
        ProductStock.objects.update_or_create(
            sku=event.sku,
            defaults={
                "name": event.name,
                "price": event.price,
                "on_hand": event.initial_stock,
                "reserved": 0,
                "updated_at": event.registered_at,
            },
        )

    def on_stock_replenished(self, event: StockReplenished, recorded: RecordedEvent) -> None:
        ProductStock.objects.filter(sku=event.sku).update(
            on_hand=event.on_hand, updated_at=event.replenished_at
        )
