"""The order summary read model: one row per order, what GET /api/orders/ shows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orders.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderPlaced,
    OrderShipped,
)
from platform_core.eventstore import RecordedEvent
from platform_core.projector import EventHandler, Projection
from projections.models import OrderSummary


def _history_entry(recorded: RecordedEvent, at: datetime) -> dict[str, str]:
    return {"type": recorded.event_type.rpartition(".")[2], "at": at.isoformat()}


class OrderSummaryProjection(Projection):
    name = "order_summary"

    def handlers(self) -> Mapping[type[Any], EventHandler]:
        return {
            OrderPlaced: self.on_order_placed,
            OrderConfirmed: self.on_order_confirmed,
            OrderCancelled: self.on_order_cancelled,
            OrderShipped: self.on_order_shipped,
            OrderDelivered: self.on_order_delivered,
        }

    def on_order_placed(self, event: OrderPlaced, recorded: RecordedEvent) -> None:
        OrderSummary.objects.update_or_create(
            id=event.order_id,
            defaults={
                "customer_id": event.customer_id,
                "status": "pending",
                "items": [
                    {
                        "sku": line.sku,
                        "name": line.name,
                        "quantity": line.quantity,
                        "unit_price": str(line.unit_price),
                    }
                    for line in event.lines
                ],
                "total": event.total,
                "history": [_history_entry(recorded, event.placed_at)],
                "placed_at": event.placed_at,
                "updated_at": event.placed_at,
            },
        )

    def on_order_confirmed(self, event: OrderConfirmed, recorded: RecordedEvent) -> None:
        self._advance(event.order_id, recorded, event.confirmed_at, status="confirmed")

    def on_order_cancelled(self, event: OrderCancelled, recorded: RecordedEvent) -> None:
        self._advance(
            event.order_id,
            recorded,
            event.cancelled_at,
            status="cancelled",
            cancellation_reason=event.reason,
        )

    def on_order_shipped(self, event: OrderShipped, recorded: RecordedEvent) -> None:
        self._advance(
            event.order_id,
            recorded,
            event.shipped_at,
            status="shipped",
            shipment_id=event.shipment_id,
            shipment_status="dispatched",
            tracking_number=event.tracking_number,
        )

    def on_order_delivered(self, event: OrderDelivered, recorded: RecordedEvent) -> None:
        self._advance(
            event.order_id,
            recorded,
            event.delivered_at,
            status="delivered",
            shipment_status="delivered",
        )

    def _advance(self, order_id: Any, recorded: RecordedEvent, at: datetime, **fields: Any) -> None:
        summary = OrderSummary.objects.get(id=order_id)
        for name, value in fields.items():
            setattr(summary, name, value)
        summary.history = [*summary.history, _history_entry(recorded, at)]
        summary.updated_at = at
        summary.save()
