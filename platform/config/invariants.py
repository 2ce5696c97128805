"""The invariants `manage.py verify_consistency` checks once the system is quiet, I1 to I7,
each counted: the fulfillment rules of `config.consistency` for every order and product,
and the platform's stores (`platform_core.operations.invariants`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from config.consistency import (
    I1,
    I2,
    I3,
    I4,
    OrderFacts,
    order_violations,
    stock_violations,
)
from inventory.domain.reservation import OrderReservation
from inventory.domain.stock import StockItem
from orders.domain.order import Order
from orders.sagas import NAME as FULFILLMENT
from payments.domain.payment import Payment
from payments.events import PaymentCaptured
from platform_core.eventsourcing.eventstore import EventStore
from platform_core.eventsourcing.repository import Repository
from platform_core.eventsourcing.serialization import EventCodec
from platform_core.models import SagaInstance, StoredEvent
from platform_core.operations import invariants
from platform_core.projections.projector import ProjectionRunner
from shipping.domain.shipment import Shipment

I5, I6, I7 = "I5", "I6", "I7"
INVARIANTS = {
    I1: "every accepted order reached a terminal state",
    I2: "no payment captured twice, every capture of a cancelled order refunded",
    I3: "stock conserved per SKU",
    I4: "no saga non-terminal",
    I5: "every read model equals a fresh fold of the event store",
    I6: "every outbox row published",
    I7: "no duplicate effect of a redelivered message",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Violation:
    invariant: str
    subject: str
    why: str

    def __str__(self) -> str:
        return f"{self.invariant} {self.subject}: {self.why}"


@dataclass
class Report:
    orders: Counter[str] = field(default_factory=Counter)  # by status
    violations: list[Violation] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Violations per invariant, every invariant named (0 when it holds)."""
        found = Counter(violation.invariant for violation in self.violations)
        return {code: found[code] for code in INVARIANTS}

    def as_json(self) -> dict[str, Any]:
        return {
            "consistent": not self.violations,
            "orders": dict(sorted(self.orders.items())),
            "invariants": {
                code: {"label": INVARIANTS[code], "violations": n}
                for code, n in self.counts().items()
            },
            "violations": [
                {"invariant": v.invariant, "subject": v.subject, "why": v.why}
                for v in self.violations
            ],
        }


def verify(
    store: EventStore, codec: EventCodec, projections: ProjectionRunner, gateway: Any = None
) -> Report:
    """Check I1 to I7; `gateway`, when it can count the charges and refunds it made (the
    fake gateway), is asked too."""
    report = Report()
    checked = _check_orders(report, _Repositories(store, codec), gateway)
    found = {
        I4: invariants.unfinished_sagas(excluding={(FULFILLMENT, key) for key in checked}),
        I5: invariants.read_model_drift(projections),
        I6: invariants.unpublished_outbox(),
        I7: invariants.repeated_effects(),
    }
    for code, findings in found.items():
        report.violations += [
            Violation(invariant=code, subject=f.subject, why=f.why) for f in findings
        ]
    report.violations.sort(key=lambda violation: violation.invariant)
    return report


def _check_orders(report: Report, repositories: _Repositories, gateway: Any) -> list[str]:
    """I1 to I4 for every order and product; the ids of the orders checked."""
    reservations = []
    order_ids = _ids("order")
    for order_id in order_ids:
        facts = repositories.facts(order_id, gateway)
        report.orders[facts.order.state.status.value] += 1
        report.violations += [
            Violation(invariant=code, subject=f"order {order_id}", why=why)
            for code, why in order_violations(facts)
        ]
        if facts.reservation is not None:
            reservations.append(facts.reservation)
    items = {sku: repositories.stock.get(sku) for sku in _ids("stock")}
    report.violations += [
        Violation(invariant=I3, subject=f"product {sku}", why=why)
        for sku, why in stock_violations(items, reservations)
    ]
    return order_ids


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
        saga = SagaInstance.objects.filter(saga=FULFILLMENT, key=order_id).first()
        return OrderFacts(
            order=self.orders.get(order_id),
            saga=saga,
            reservation=self.reservations.find(order_id),
            payment=self.payments.find(order_id),
            shipment=self._shipment(saga),
            captures_logged=sum(e.event_type == PaymentCaptured.event_type for e in payment_stream),
            gateway=_gateway_counts(gateway, order_id),
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
