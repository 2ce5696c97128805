"""The order-fulfillment saga: reserve stock -> take payment -> book shipment -> confirm.

Started by `orders.order-placed.v2` (or a retired v1 sent before the upgrade). A failure
compensates the steps done, in reverse (cancel the shipment, refund the payment, release
the stock), and cancels the order with the reason. The card travels as the payment token
vault's reference (`payment_ref`), never as the token. A customer's cancellation request
(`orders.order-cancellation-requested.v1`) compensates the same way. Every compensation
is answered even when it overtakes the step it undoes, so every instance ends completed
or compensated.

Booking the shipment is the pivot. The steps up to it can be undone and are given up
(compensated) when they stay silent for `give_up_after`; confirming the order cannot be
undone by the saga, so it is re-sent until the order answers. A shipment the carrier has
taken cannot be cancelled: the shipping context answers that it is too late, and the
saga goes on (the order is told its cancellation was refused). So the order is cancelled
only once its shipment, if booked, is cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from inventory.commands import ReleaseStock, ReserveStock
from inventory.events import (
    ReservationLine,
    StockReleasedV1,
    StockReservationFailedV1,
    StockReservedV1,
)
from orders.commands import CancelOrder, ConfirmOrder, RefuseOrderCancellation
from orders.events import (
    ORDER_PLACED_V1,
    OrderCancellationRequestedV1,
    OrderConfirmedV1,
    OrderPlacedV2,
)
from payments.commands import ProcessPayment, RefundPayment
from payments.events import (
    PaymentCapturedV1,
    PaymentDeclinedV1,
    PaymentRefundedV1,
    PaymentRefundFailedV1,
    PaymentVoidedV1,
)
from platform_core.sagas.definition import Reply, SagaDefinition, Step
from shipping.commands import CancelShipment, CreateShipment
from shipping.events import (
    Address,
    ShipmentCancellationRefusedV1,
    ShipmentCancelledV1,
    ShipmentCreatedV1,
)

NAME = "order-fulfillment"
Data = Mapping[str, Any]


def _order(data: Data) -> UUID:
    return UUID(data["order_id"])


def _started(reply: Reply) -> dict[str, Any]:
    order_id = str(reply.data["order_id"])
    return {
        "order_id": order_id,
        "lines": [
            {"sku": line["sku"], "quantity": line["quantity"]} for line in reply.data["lines"]
        ],
        "total": str(reply.data["total"]),
        # The vault's reference to the card token (none in a retired v1 start).
        "payment_ref": reply.data.get("payment_ref", ""),
        "address": dict(reply.data["shipping_address"]),
        "shipment_id": f"shp-{order_id}",
    }


def reserve(data: Data, command_id: UUID) -> ReserveStock:
    lines = tuple(ReservationLine(sku=x["sku"], quantity=x["quantity"]) for x in data["lines"])
    return ReserveStock(order_id=_order(data), lines=lines, command_id=command_id)


def release(data: Data, command_id: UUID) -> ReleaseStock:
    return ReleaseStock(order_id=_order(data), command_id=command_id)


def pay(data: Data, command_id: UUID) -> ProcessPayment:
    return ProcessPayment(
        order_id=_order(data),
        amount=Decimal(data["total"]),
        payment_ref=data.get("payment_ref", ""),
        command_id=command_id,
    )


def refund(data: Data, command_id: UUID) -> RefundPayment:
    return RefundPayment(order_id=_order(data), command_id=command_id)


def book_shipment(data: Data, command_id: UUID) -> CreateShipment:
    return CreateShipment(
        order_id=_order(data),
        shipment_id=data["shipment_id"],
        address=Address(**data["address"]),
        command_id=command_id,
    )


def cancel_shipment(data: Data, command_id: UUID) -> CancelShipment:
    return CancelShipment(
        shipment_id=data["shipment_id"],
        reason="order cancelled",
        order_id=_order(data),
        command_id=command_id,
    )


def confirm(data: Data, command_id: UUID) -> ConfirmOrder:
    return ConfirmOrder(order_id=_order(data), command_id=command_id)


def cancel_order(data: Data, reason: str, command_id: UUID) -> CancelOrder:
    return CancelOrder(order_id=_order(data), reason=reason, command_id=command_id)


def refuse_cancellation(data: Data, reason: str, command_id: UUID) -> RefuseOrderCancellation:
    return RefuseOrderCancellation(order_id=_order(data), reason=reason, command_id=command_id)


def order_fulfillment(
    *, step_deadline: timedelta, give_up_after: timedelta, stuck_after: int = 3
) -> SagaDefinition:
    """The saga, each step's reply awaited for `step_deadline` (then re-sent with
    backoff, flagged stuck after `stuck_after` re-sends), the steps before the pivot
    compensated after `give_up_after` without an answer."""

    def step(name: str, **rest: Any) -> Step:
        return Step(
            name=name,
            deadline=step_deadline,
            max_wait=step_deadline * 8,
            give_up_after=give_up_after,
            stuck_after=stuck_after,
            **rest,
        )

    return SagaDefinition(
        name=NAME,
        started_by=OrderPlacedV2.event_type,
        also_started_by=frozenset({ORDER_PLACED_V1}),
        key_of=lambda reply: str(reply.data["order_id"]),
        initial_data=_started,
        aborted_by=frozenset({OrderCancellationRequestedV1.event_type}),
        on_compensation=cancel_order,
        on_resumed=refuse_cancellation,
        steps=(
            step(
                "reserve-stock",
                command=reserve,
                succeeded_on=frozenset({StockReservedV1.event_type}),
                failed_on=frozenset({StockReservationFailedV1.event_type}),
                compensation=release,
                compensated_on=frozenset({StockReleasedV1.event_type}),
            ),
            step(
                "take-payment",
                command=pay,
                succeeded_on=frozenset({PaymentCapturedV1.event_type}),
                failed_on=frozenset({PaymentDeclinedV1.event_type}),
                compensation=refund,
                compensated_on=frozenset(
                    {PaymentRefundedV1.event_type, PaymentVoidedV1.event_type}
                ),
                compensation_failed_on=frozenset({PaymentRefundFailedV1.event_type}),
            ),
            step(
                "book-shipment",
                command=book_shipment,
                succeeded_on=frozenset({ShipmentCreatedV1.event_type}),
                compensation=cancel_shipment,
                compensated_on=frozenset({ShipmentCancelledV1.event_type}),
                too_late_on=frozenset({ShipmentCancellationRefusedV1.event_type}),
                keep=lambda reply: {"tracking_number": reply.data["tracking_number"]},
            ),
            step(
                "confirm-order",
                command=confirm,
                succeeded_on=frozenset({OrderConfirmedV1.event_type}),
            ),
        ),
    )
