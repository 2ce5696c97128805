"""The fulfillment guarantees, checked against what is stored (`manage.py
verify_consistency`, run once the system is quiet):

- every accepted order is settled: confirmed (or further) or cancelled, its saga ended
  and not waiting for a person;
- confirmed: stock held (committed once shipped), payment captured, shipment live;
- cancelled: no stock held, no net charge, no live shipment;
- no payment captured twice, in the event log or at the (fake) gateway;
- stock conserved per SKU: what a product holds is what its live reservations hold;
- the order read model shows the status the event log gives.

The rules (`order_violations`, `stock_violations`) are plain functions of the facts, so
the model-based test checks its in-memory system by the same ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inventory.domain.reservation import OrderReservation, ReservationStatus
from inventory.domain.stock import StockItem
from orders.domain.order import Order, OrderStatus
from orders.sagas import NAME as FULFILLMENT
from payments.domain.payment import Payment, PaymentStatus
from payments.events import PaymentCaptured
from platform_core.eventsourcing.eventstore import EventStore
from platform_core.eventsourcing.repository import Repository
from platform_core.eventsourcing.serialization import EventCodec
from platform_core.models import SagaInstance, StoredEvent
from projections.models import OrderSummary
from shipping.domain.shipment import Shipment, ShipmentStatus

Status = SagaInstance.Status
FULFILLED = {
    OrderStatus.CONFIRMED: (ReservationStatus.RESERVED, ShipmentStatus.CREATED),
    OrderStatus.SHIPPED: (ReservationStatus.COMMITTED, ShipmentStatus.DISPATCHED),
    OrderStatus.DELIVERED: (ReservationStatus.COMMITTED, ShipmentStatus.DELIVERED),
}
LIVE_SHIPMENT = (ShipmentStatus.CREATED, ShipmentStatus.DISPATCHED, ShipmentStatus.DELIVERED)


@dataclass(frozen=True, kw_only=True)
class OrderFacts:
    """What the stores say of one order."""

    order: Order
    saga: SagaInstance | None
    reservation: OrderReservation | None
    payment: Payment | None
    shipment: Shipment | None
    captures_logged: int  # PaymentCaptured events in the payment's stream
    gateway: tuple[int, int] | None = None  # (charges, refunds) the gateway made, if known
    read_status: str | None = None  # what the order read model shows, if read


def order_violations(facts: OrderFacts) -> list[str]:
    """Why the order is not settled consistently (nothing when it is)."""
    status = facts.order.state.status
    found = _saga_violations(facts.saga, status)
    if status in FULFILLED:
        found += _fulfilled_violations(facts, *FULFILLED[status])
    elif status is OrderStatus.CANCELLED:
        found += _cancelled_violations(facts)
    if facts.captures_logged > 1 or (facts.gateway is not None and facts.gateway[0] > 1):
        found.append("payment captured more than once")
    if facts.read_status is not None and facts.read_status != status.value:
        found.append(f"the read model says {facts.read_status!r}, the log {status.value!r}")
    return found


def stock_violations(
    items: Mapping[str, StockItem], reservations: Iterable[OrderReservation]
) -> list[tuple[str, str]]:
    """(SKU, why) for every product whose held stock is not what live reservations hold."""
    held: Counter[str] = Counter()
    for reservation in reservations:
        if reservation.state.status is ReservationStatus.RESERVED:
            for line in reservation.state.lines:
                held[line.sku] += line.quantity
    found = []
    for sku, item in sorted(items.items()):
        state = item.state
        if state.reserved != held[sku]:
            found.append((sku, f"holds {state.reserved}, its live reservations {held[sku]}"))
        if not 0 <= state.reserved <= state.on_hand:
            found.append((sku, f"{state.reserved} reserved of {state.on_hand} on hand"))
    return found


def _saga_violations(saga: SagaInstance | None, status: OrderStatus) -> list[str]:
    if status is OrderStatus.PENDING:
        return [f"still pending (saga {saga.status if saga else 'never started'})"]
    if saga is None:
        return ["no saga instance"]
    found = []
    expected = Status.COMPENSATED if status is OrderStatus.CANCELLED else Status.COMPLETED
    if saga.status != expected:
        found.append(f"{status.value} but its saga is {saga.status}")
    if saga.stuck:
        found.append(f"its saga needs attention: {saga.data.get('_stuck', '')}")
    return found


def _fulfilled_violations(
    facts: OrderFacts, reservation: ReservationStatus, shipment: ShipmentStatus
) -> list[str]:
    found = []
    if _status(facts.reservation) is not reservation:
        found.append(f"stock is {_status(facts.reservation)}, not {reservation}")
    if _status(facts.payment) is not PaymentStatus.CAPTURED:
        found.append(f"payment is {_status(facts.payment)}, not captured")
    if facts.gateway is not None and facts.gateway != (1, 0):
        found.append(
            "the gateway made {} charge(s) and {} refund(s), not 1 and 0".format(*facts.gateway)
        )
    if _status(facts.shipment) is not shipment:
        found.append(f"shipment is {_status(facts.shipment)}, not {shipment}")
    return found


def _cancelled_violations(facts: OrderFacts) -> list[str]:
    found = []
    if _status(facts.reservation) is ReservationStatus.RESERVED:
        found.append("cancelled with its stock still held")
    if _status(facts.payment) is PaymentStatus.REFUND_FAILED:
        found.append("cancelled but the gateway refused its refund: the money is still charged")
    elif _status(facts.payment) is PaymentStatus.CAPTURED:
        found.append("cancelled with its payment captured and not refunded")
    if facts.gateway is not None and facts.gateway[0] != facts.gateway[1]:
        found.append(
            "cancelled with {} charge(s) and {} refund(s) at the gateway".format(*facts.gateway)
        )
    if _status(facts.shipment) in LIVE_SHIPMENT:
        found.append(f"cancelled with its shipment {_status(facts.shipment)}")
    return found


def _status(aggregate: Any) -> Any:
    return None if aggregate is None else aggregate.state.status


@dataclass
class Report:
    orders: Counter[str] = field(default_factory=Counter)  # by status
    violations: list[tuple[str, str]] = field(default_factory=list)  # (subject, why)


def verify(store: EventStore, codec: EventCodec, gateway: Any = None) -> Report:
    """Check every order and product in the store; `gateway`, when it can count the
    charges and refunds it made (the fake gateway), is asked too."""
    report = Report()
    repositories = _Repositories(store, codec)
    reservations = []
    for order_id in _ids("order"):
        facts = repositories.facts(order_id, gateway)
        report.orders[facts.order.state.status.value] += 1
        report.violations += [(f"order {order_id}", why) for why in order_violations(facts)]
        if facts.reservation is not None:
            reservations.append(facts.reservation)
    items = {sku: repositories.stock.get(sku) for sku in _ids("stock")}
    report.violations += [
        (f"product {sku}", why) for sku, why in stock_violations(items, reservations)
    ]
    return report


class _Repositories:
    def __init__(self, store: EventStore, codec: EventCodec) -> None:
        self.store = store
        self.orders = Repository(Order, store=store, codec=codec)
        self.stock = Repository(StockItem, store=store, codec=codec)
        self.reservations = Repository(OrderReservation, store=store, codec=codec)
        self.payments = Repository(Payment, store=store, codec=codec)
        self.shipments = Repository(Shipment, store=store, codec=codec)

    def facts(self, order_id: str, gateway: Any) -> OrderFacts:
        payment_stream = self.store.read_stream(Payment.stream_id_for(order_id))
        read = OrderSummary.objects.filter(id=order_id).values_list("status", flat=True).first()
        saga = SagaInstance.objects.filter(saga=FULFILLMENT, key=order_id).first()
        return OrderFacts(
            order=self.orders.get(order_id),
            saga=saga,
            reservation=self.reservations.find(order_id),
            payment=self.payments.find(order_id),
            shipment=self._shipment(saga),
            captures_logged=sum(e.event_type == PaymentCaptured.event_type for e in payment_stream),
            gateway=_gateway_counts(gateway, order_id),
            read_status=read,
        )

    def _shipment(self, saga: SagaInstance | None) -> Shipment | None:
        """The shipment the saga booked (or voided), by the id it gave it."""
        shipment_id = saga.data.get("shipment_id") if saga is not None else None
        return self.shipments.find(shipment_id) if shipment_id else None


def _ids(stream_type: str) -> list[str]:
    """The aggregate ids of every stream of `stream_type` (`<category>-<id>`)."""
    streams = StoredEvent.objects.filter(stream_type=stream_type, version=1)
    return [stream_id.split("-", 1)[1] for stream_id in streams.values_list("stream_id", flat=True)]


def _gateway_counts(gateway: Any, order_id: str) -> tuple[int, int] | None:
    if gateway is None or not hasattr(gateway, "charges_captured"):
        return None
    return gateway.charges_captured(order_id), gateway.refunds_made(order_id)
