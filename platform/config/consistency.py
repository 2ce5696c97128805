"""The fulfillment guarantees as rules over what the stores say of each order and product.

Each rule names the invariant it checks (`I1`..`I4`; `config.invariants` lists them all
and checks the others, which are about the platform's stores rather than one order):

- I1 every accepted order is settled: confirmed (or further) with its stock held and its
  shipment live, or cancelled with no stock held and no live shipment;
- I2 no payment captured twice (in the event log or at the gateway); every capture of a
  cancelled order refunded;
- I3 stock conserved per SKU: what a product holds is what its live reservations hold;
- I4 its saga ended the way the order did, and is not waiting for a person.

The rules (`order_violations`, `stock_violations`) are plain functions of the facts, so
the model-based test checks its in-memory system by the same ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from inventory.domain.reservation import OrderReservation, ReservationStatus
from inventory.domain.stock import StockItem
from orders.domain.order import Order, OrderStatus
from payments.domain.payment import Payment, PaymentStatus
from platform_core.models import SagaInstance
from shipping.domain.shipment import Shipment, ShipmentStatus

Status = SagaInstance.Status
FULFILLED = {
    OrderStatus.CONFIRMED: (ReservationStatus.RESERVED, ShipmentStatus.CREATED),
    OrderStatus.SHIPPED: (ReservationStatus.COMMITTED, ShipmentStatus.DISPATCHED),
    OrderStatus.DELIVERED: (ReservationStatus.COMMITTED, ShipmentStatus.DELIVERED),
}
LIVE_SHIPMENT = (ShipmentStatus.CREATED, ShipmentStatus.DISPATCHED, ShipmentStatus.DELIVERED)
UNFINISHED = (Status.RUNNING, Status.COMPENSATING)
I1, I2, I3, I4 = "I1", "I2", "I3", "I4"


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


def order_violations(facts: OrderFacts) -> list[tuple[str, str]]:
    """(invariant, why) for each way the order is not settled consistently."""
    status = facts.order.state.status
    found = _saga_violations(facts.saga, status)
    if status in FULFILLED:
        found += _fulfilled_violations(facts, *FULFILLED[status])
    elif status is OrderStatus.CANCELLED:
        found += _cancelled_violations(facts)
    if facts.captures_logged > 1 or (facts.gateway is not None and facts.gateway[0] > 1):
        found.append((I2, "payment captured more than once"))
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


def _saga_violations(saga: SagaInstance | None, status: OrderStatus) -> list[tuple[str, str]]:
    found = []
    if status is OrderStatus.PENDING:
        found.append((I1, f"still pending (saga {saga.status if saga else 'never started'})"))
        if saga is not None and saga.status in UNFINISHED:
            found.append((I4, f"its saga is {saga.status}"))
    elif saga is None:
        found.append((I4, "no saga instance"))
    else:
        expected = Status.COMPENSATED if status is OrderStatus.CANCELLED else Status.COMPLETED
        if saga.status != expected:
            found.append((I4, f"{status.value} but its saga is {saga.status}"))
    if saga is not None and saga.stuck:
        found.append((I4, f"its saga needs attention: {saga.data.get('_stuck', '')}"))
    return found


def _fulfilled_violations(
    facts: OrderFacts, reservation: ReservationStatus, shipment: ShipmentStatus
) -> list[tuple[str, str]]:
    found = []
    if _status(facts.reservation) is not reservation:
        found.append((I1, f"stock is {_status(facts.reservation)}, not {reservation}"))
    if _status(facts.payment) is not PaymentStatus.CAPTURED:
        found.append((I1, f"payment is {_status(facts.payment)}, not captured"))
    # More than one charge is reported once, as a double capture (order_violations).
    if facts.gateway is not None and facts.gateway[0] <= 1 and facts.gateway != (1, 0):
        made = "the gateway made {} charge(s) and {} refund(s), not 1 and 0"
        found.append((I2, made.format(*facts.gateway)))
    if _status(facts.shipment) is not shipment:
        found.append((I1, f"shipment is {_status(facts.shipment)}, not {shipment}"))
    return found


def _cancelled_violations(facts: OrderFacts) -> list[tuple[str, str]]:
    found = []
    if _status(facts.reservation) is ReservationStatus.RESERVED:
        found.append((I1, "cancelled with its stock still held"))
    if _status(facts.payment) is PaymentStatus.REFUND_FAILED:
        refused = "cancelled but the gateway refused its refund: the money is still charged"
        found.append((I2, refused))
    elif _status(facts.payment) is PaymentStatus.CAPTURED:
        found.append((I2, "cancelled with its payment captured and not refunded"))
    if facts.gateway is not None and facts.gateway[0] != facts.gateway[1]:
        made = "cancelled with {} charge(s) and {} refund(s) at the gateway"
        found.append((I2, made.format(*facts.gateway)))
    if _status(facts.shipment) in LIVE_SHIPMENT:
        found.append((I1, f"cancelled with its shipment {_status(facts.shipment)}"))
    return found


def _status(aggregate: Any) -> Any:
    return None if aggregate is None else aggregate.state.status
