"""The product stock read model: what GET /api/products/ shows.

Stock events carry the product's totals after the change (`on_hand`, `reserved`), so the
projection copies them rather than adding quantities up: a replayed or rebuilt projection
lands on the same numbers as the aggregate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from inventory.events import (
    ProductRegistered,
    ReservationCommitted,
    ReservationReleased,
    StockReplenished,
    StockReserved,
)
from platform_core.eventsourcing.eventstore import RecordedEvent
from platform_core.projections.projector import EventHandler, Projection, RowKeys
from platform_core.projections.read_models import ReadState
from projections.models import ProductStock

logger = logging.getLogger(__name__)


class ProductStockProjection(Projection):
    name = "product_stock"
    tables = (ProductStock,)

    def row_keys(self, event: Any) -> RowKeys:
        return ((ProductStock, event.sku),)

    def handlers(self) -> Mapping[type[Any], EventHandler]:
        return {
            ProductRegistered: self.on_product_registered,
            StockReplenished: self.on_stock_replenished,
            StockReserved: self.on_stock_reserved,
            ReservationReleased: self.on_reservation_released,
            ReservationCommitted: self.on_reservation_committed,
        }

    def on_product_registered(
        self, event: ProductRegistered, recorded: RecordedEvent, state: ReadState
    ) -> None:
        state[ProductStock].put(
            {
                "sku": event.sku,
                "name": event.name,
                "price": event.price,
                "on_hand": event.initial_stock,
                "reserved": 0,
                "updated_at": event.registered_at,
            }
        )

    def on_stock_replenished(
        self, event: StockReplenished, recorded: RecordedEvent, state: ReadState
    ) -> None:
        self._set(state, event.sku, recorded, event.replenished_at, on_hand=event.on_hand)

    def on_stock_reserved(
        self, event: StockReserved, recorded: RecordedEvent, state: ReadState
    ) -> None:
        self._set(state, event.sku, recorded, event.reserved_at, reserved=event.reserved)

    def on_reservation_released(
        self, event: ReservationReleased, recorded: RecordedEvent, state: ReadState
    ) -> None:
        self._set(state, event.sku, recorded, event.released_at, reserved=event.reserved)

    def on_reservation_committed(
        self, event: ReservationCommitted, recorded: RecordedEvent, state: ReadState
    ) -> None:
        self._set(
            state,
            event.sku,
            recorded,
            event.committed_at,
            on_hand=event.on_hand,
            reserved=event.reserved,
        )

    def _set(
        self, state: ReadState, sku: str, recorded: RecordedEvent, at: datetime, **fields: int
    ) -> None:
        products = state[ProductStock]
        product = products.get(sku)
        if product is None:
            logger.warning(
                "skipped %s at position %s: no product %s in the read model",
                recorded.event_type,
                recorded.log_position,
                sku,
            )
            return
        product.update(fields, updated_at=at)
        products.put(product)
