"""What the read models must hold, folded from the event store by the domain's rules.

Written from the rules, not from the projections: each field of a row is a statement
about the events of its order or product (the last status the orders context reported,
the furthest the shipment got, the stock after every movement), so a projection that
skips, repeats or reorders an event lands elsewhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from inventory.events import (
    ProductRegistered,
    ReservationCommitted,
    ReservationReleased,
    StockReplenished,
    StockReserved,
)
from orders.events import (
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
from platform_core.eventsourcing.eventstore import LogPosition, RecordedEvent
from platform_core.eventsourcing.serialization import EventCodec
from platform_core.models import DeadLetter, ProjectionCheckpoint, StoredEvent
from platform_core.projections.projector import ProjectionRunner
from projections.models import OrderSummary, ProductStock
from shipping.events import (
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentDispatched,
)
from tests.support import catch_up_fully

Row = dict[str, Any]
Logged = tuple[RecordedEvent, Any]  # a stored event and the domain event it holds

ORDER_STATUS = {
    OrderPlaced: "pending",
    OrderConfirmed: "confirmed",
    OrderCancelled: "cancelled",
    OrderShipped: "shipped",
    OrderDelivered: "delivered",
}
PAYMENT_STATUS = {
    PaymentCaptured: "captured",
    PaymentDeclined: "declined",
    PaymentRefunded: "refunded",
    PaymentVoided: "voided",
    PaymentRefundFailed: "refund_failed",
}
# Both shipping and orders say how far the shipment got; it never goes back.
SHIPMENT_STAGE = {
    ShipmentCreated: "created",
    ShipmentCancelled: "cancelled",
    ShipmentDispatched: "dispatched",
    OrderShipped: "dispatched",
    ShipmentDelivered: "delivered",
    OrderDelivered: "delivered",
}
STAGE_RANK = {"created": 1, "cancelled": 2, "dispatched": 2, "delivered": 3}
STOCK_EVENTS = (
    ProductRegistered,
    StockReplenished,
    StockReserved,
    ReservationReleased,
    ReservationCommitted,
)


def when(event: Any) -> datetime:
    """When the event happened: its one `*_at` field."""
    at: datetime = next(getattr(event, f.name) for f in fields(event) if f.name.endswith("_at"))
    return at


def _last(statuses: dict[type, str], events: Iterable[Any]) -> str:
    said = [statuses[type(event)] for event in events if type(event) in statuses]
    return said[-1] if said else ""


def _first(attribute: str, events: Iterable[Any]) -> str:
    return next((value for event in events if (value := getattr(event, attribute, ""))), "")


def _stamped(row: Row, facts: Sequence[Logged]) -> Row:
    last = facts[-1][0].log_position
    return {**row, "last_transaction_id": last.transaction_id, "last_position": last.position}


def _order_summary(facts: Sequence[Logged]) -> Row:
    events = [event for _, event in facts]
    placed: OrderPlaced = events[0]
    stages = [SHIPMENT_STAGE[type(e)] for e in events if type(e) in SHIPMENT_STAGE]
    items = [
        {
            "sku": line.sku,
            "name": line.name,
            "quantity": line.quantity,
            "unit_price": str(line.unit_price),
        }
        for line in placed.lines
    ]
    row = {
        "id": placed.order_id,
        "customer_id": placed.customer_id,
        "status": _last(ORDER_STATUS, events),
        "items": items,
        "total": placed.total,
        "payment_status": _last(PAYMENT_STATUS, events),
        "shipment_id": _first("shipment_id", events),
        "shipment_status": max(stages, key=STAGE_RANK.__getitem__, default=""),
        "tracking_number": _first("tracking_number", events),
        "cancellation_reason": _first(
            "reason", (e for e in events if isinstance(e, OrderCancelled))
        ),
        "history": [{"type": type(e).__name__, "at": when(e).isoformat()} for e in events],
        "placed_at": placed.placed_at,
        "updated_at": max(when(event) for event in events),
    }
    return _stamped(row, facts)


def fold_order_summaries(log: Iterable[Logged]) -> dict[Any, Row]:
    """One row per placed order, from its events in log order."""
    about: dict[Any, list[Logged]] = defaultdict(list)
    for recorded, event in log:
        if (
            type(event) in ORDER_STATUS
            or type(event) in PAYMENT_STATUS
            or type(event) in SHIPMENT_STAGE
        ):
            about[event.order_id].append((recorded, event))
    return {
        order_id: _order_summary(facts)
        for order_id, facts in about.items()
        if isinstance(facts[0][1], OrderPlaced)
    }


def _product_stock(facts: Sequence[Logged]) -> Row:
    events: list[Any] = [event for _, event in facts]
    registered: ProductRegistered = events[0]

    def moved(kind: type[Any]) -> int:
        quantities: list[int] = [event.quantity for event in events if type(event) is kind]
        return sum(quantities)

    row = {
        "sku": registered.sku,
        "name": registered.name,
        "price": registered.price,
        "on_hand": registered.initial_stock + moved(StockReplenished) - moved(ReservationCommitted),
        "reserved": moved(StockReserved) - moved(ReservationReleased) - moved(ReservationCommitted),
        "updated_at": when(events[-1]),
    }
    return _stamped(row, facts)


def fold_product_stock(log: Iterable[Logged]) -> dict[str, Row]:
    """One row per registered product: its stock after every movement, in log order."""
    about: dict[str, list[Logged]] = defaultdict(list)
    for recorded, event in log:
        if isinstance(event, STOCK_EVENTS):
            about[event.sku].append((recorded, event))
    return {
        sku: _product_stock(facts)
        for sku, facts in about.items()
        if isinstance(facts[0][1], ProductRegistered)
    }


def whole_log(runner: ProjectionRunner, codec: EventCodec) -> list[Logged]:
    """Every event the store's global log shows, decoded, in log order."""
    log: list[Logged] = []
    while page := runner.store.read_all(log[-1][0].log_position if log else LogPosition(0, 0)):
        log += [(r, codec.decode(r.event_type, r.schema_version, r.data)) for r in page]
    return log


def up_to(log: Sequence[Logged], position: LogPosition) -> list[Logged]:
    return [(recorded, event) for recorded, event in log if recorded.log_position <= position]


def order_rows() -> dict[Any, Row]:
    return {row["id"]: dict(row) for row in OrderSummary.objects.values()}


def stock_rows() -> dict[str, Row]:
    return {row["sku"]: dict(row) for row in ProductStock.objects.values()}


def forget_everything() -> None:
    """Empty the log, checkpoints and read models: Hypothesis runs many examples per test."""
    for model in (StoredEvent, ProjectionCheckpoint, DeadLetter, OrderSummary, ProductStock):
        model.objects.all().delete()


def drain(runner: ProjectionRunner, seconds: float = 10.0) -> None:
    """Catch up until every checkpoint is at the newest stored event (none may stop)."""
    catch_up_fully(runner, seconds=seconds)
