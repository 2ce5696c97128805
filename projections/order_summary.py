"""The order summary read model: one row per order, what GET /api/orders/ shows.

The order's `status` follows the orders context only. Payments and shipping add what they
know: `payment_status`, and the shipment's id, status and tracking number. The shipment is
reported twice, by shipping (ShipmentDispatched, ShipmentDelivered) and by orders
(OrderShipped, OrderDelivered), so its status only ever moves forward: whichever source
the log shows first, the other one then agrees with it or is already behind it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orders.events import (
    OrderCancellationRefused,
    OrderCancellationRequested,
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderPlaced,
    OrderShipped,
)
from payments.events import (
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentRefundFailed,
    PaymentVoided,
)
from platform_core.eventsourcing.eventstore import RecordedEvent
from platform_core.projections.projector import Changes, EventHandler, Projection, RowKeys
from platform_core.projections.read_models import ReadState, Row
from projections.models import OrderSummary
from shipping.events import (
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentDispatched,
)

logger = logging.getLogger(__name__)

# How far a shipment has got. A shipment is either cancelled or dispatched, never both.
_SHIPMENT_PROGRESS = {"": 0, "created": 1, "cancelled": 2, "dispatched": 2, "delivered": 3}

Announce = Callable[[Sequence[Row]], None]


@dataclass(frozen=True, kw_only=True)
class _ShipmentNews:
    """What one event says about the order's shipment; no id means the current one."""

    status: str
    shipment_id: str = ""
    tracking_number: str = ""


def _history_entry(recorded: RecordedEvent, at: datetime) -> dict[str, str]:
    return {"type": _short_name(recorded.event_type), "at": at.isoformat()}


@functools.cache
def _short_name(event_type: str) -> str:
    return event_type.rpartition(".")[2]


def _apply_shipment(summary: Row, news: _ShipmentNews) -> None:
    shipment_id = news.shipment_id or summary["shipment_id"]
    if not shipment_id:
        return
    if summary["shipment_id"] and shipment_id != summary["shipment_id"]:
        if news.status != "created":
            # About a shipment the order has since replaced: history only.
            return
        summary["shipment_status"] = summary["tracking_number"] = ""
    summary["shipment_id"] = shipment_id
    current = _SHIPMENT_PROGRESS.get(summary["shipment_status"], 0)
    if _SHIPMENT_PROGRESS[news.status] >= current:
        summary["shipment_status"] = news.status
    summary["tracking_number"] = news.tracking_number or summary["tracking_number"]


class OrderSummaryProjection(Projection):
    """One row per order. `announce`, if given, is told of the rows each batch changed."""

    name = "order_summary"
    tables = (OrderSummary,)

    def __init__(self, announce: Announce | None = None) -> None:
        self._announce = announce

    def committed(self, changed: Changes) -> None:
        if self._announce is not None and changed.get(OrderSummary):
            self._announce(changed[OrderSummary])

    def row_keys(self, event: Any) -> RowKeys:
        return ((OrderSummary, event.order_id),)

    def handlers(self) -> Mapping[type[Any], EventHandler]:
        return {
            OrderPlaced: self.on_order_placed,
            OrderConfirmed: self.on_order_confirmed,
            OrderCancelled: self.on_order_cancelled,
            OrderCancellationRequested: self.on_cancellation_asked_or_refused,
            OrderCancellationRefused: self.on_cancellation_asked_or_refused,
            OrderShipped: self.on_order_shipped,
            OrderDelivered: self.on_order_delivered,
            PaymentCaptured: self.on_payment_captured,
            PaymentDeclined: self.on_payment_declined,
            PaymentRefunded: self.on_payment_refunded,
            PaymentVoided: self.on_payment_voided,
            PaymentRefundFailed: self.on_payment_refund_failed,
            ShipmentCreated: self.on_shipment_created,
            ShipmentCancelled: self.on_shipment_cancelled,
            ShipmentDispatched: self.on_shipment_dispatched,
            ShipmentDelivered: self.on_shipment_delivered,
        }

    def on_order_placed(
        self, event: OrderPlaced, recorded: RecordedEvent, state: ReadState
    ) -> None:
        state[OrderSummary].put(
            {
                "id": event.order_id,
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
                "payment_status": "",
                "shipment_id": "",
                "shipment_status": "",
                "tracking_number": "",
                "cancellation_reason": "",
                "history": [_history_entry(recorded, event.placed_at)],
                "placed_at": event.placed_at,
                "updated_at": event.placed_at,
            }
        )

    def on_order_confirmed(
        self, event: OrderConfirmed, recorded: RecordedEvent, state: ReadState
    ) -> None:
        self._advance(state, event.order_id, recorded, event.confirmed_at, status="confirmed")

    def on_cancellation_asked_or_refused(
        self,
        event: OrderCancellationRequested | OrderCancellationRefused,
        recorded: RecordedEvent,
        state: ReadState,
    ) -> None:
        """Shown in the history only: the status changes when the saga decides."""
        at = (
            event.requested_at
            if isinstance(event, OrderCancellationRequested)
            else event.refused_at
        )
        self._advance(state, event.order_id, recorded, at)

    def on_order_cancelled(
        self, event: OrderCancelled, recorded: RecordedEvent, state: ReadState
    ) -> None:
        self._advance(
            state,
            event.order_id,
            recorded,
            event.cancelled_at,
            status="cancelled",
            cancellation_reason=event.reason,
        )

    def on_order_shipped(
        self, event: OrderShipped, recorded: RecordedEvent, state: ReadState
    ) -> None:
        news = _ShipmentNews(
            shipment_id=event.shipment_id,
            status="dispatched",
            tracking_number=event.tracking_number,
        )
        self._advance(state, event.order_id, recorded, event.shipped_at, news, status="shipped")

    def on_order_delivered(
        self, event: OrderDelivered, recorded: RecordedEvent, state: ReadState
    ) -> None:
        news = _ShipmentNews(status="delivered")
        self._advance(state, event.order_id, recorded, event.delivered_at, news, status="delivered")

    def on_payment_captured(
        self, event: PaymentCaptured, recorded: RecordedEvent, state: ReadState
    ) -> None:
        self._advance(state, event.order_id, recorded, event.captured_at, payment_status="captured")

    def on_payment_declined(
        self, event: PaymentDeclined, recorded: RecordedEvent, state: ReadState
    ) -> None:
        self._advance(state, event.order_id, recorded, event.declined_at, payment_status="declined")

    def on_payment_refunded(
        self, event: PaymentRefunded, recorded: RecordedEvent, state: ReadState
    ) -> None:
        self._advance(state, event.order_id, recorded, event.refunded_at, payment_status="refunded")

    def on_payment_voided(
        self, event: PaymentVoided, recorded: RecordedEvent, state: ReadState
    ) -> None:
        self._advance(state, event.order_id, recorded, event.voided_at, payment_status="voided")

    def on_payment_refund_failed(
        self, event: PaymentRefundFailed, recorded: RecordedEvent, state: ReadState
    ) -> None:
        # The money is still charged: the order says so rather than look settled.
        self._advance(
            state, event.order_id, recorded, event.failed_at, payment_status="refund_failed"
        )

    def on_shipment_created(
        self, event: ShipmentCreated, recorded: RecordedEvent, state: ReadState
    ) -> None:
        news = _ShipmentNews(
            shipment_id=event.shipment_id,
            status="created",
            tracking_number=event.tracking_number,
        )
        self._advance(state, event.order_id, recorded, event.created_at, news)

    def on_shipment_cancelled(
        self, event: ShipmentCancelled, recorded: RecordedEvent, state: ReadState
    ) -> None:
        news = _ShipmentNews(shipment_id=event.shipment_id, status="cancelled")
        self._advance(state, event.order_id, recorded, event.cancelled_at, news)

    def on_shipment_dispatched(
        self, event: ShipmentDispatched, recorded: RecordedEvent, state: ReadState
    ) -> None:
        news = _ShipmentNews(
            shipment_id=event.shipment_id,
            status="dispatched",
            tracking_number=event.tracking_number,
        )
        self._advance(state, event.order_id, recorded, event.dispatched_at, news)

    def on_shipment_delivered(
        self, event: ShipmentDelivered, recorded: RecordedEvent, state: ReadState
    ) -> None:
        news = _ShipmentNews(shipment_id=event.shipment_id, status="delivered")
        self._advance(state, event.order_id, recorded, event.delivered_at, news)

    def _advance(
        self,
        state: ReadState,
        order_id: Any,
        recorded: RecordedEvent,
        at: datetime,
        shipment: _ShipmentNews | None = None,
        **fields: Any,
    ) -> None:
        orders = state[OrderSummary]
        summary = orders.get(order_id)
        if summary is None:
            logger.warning(
                "skipped %s at position %s: no order %s in the read model",
                recorded.event_type,
                recorded.log_position,
                order_id,
            )
            return
        summary.update(fields)
        if shipment is not None:
            _apply_shipment(summary, shipment)
        summary["history"].append(_history_entry(recorded, at))
        summary["updated_at"] = max(summary["updated_at"], at)
        orders.put(summary)
