"""One function per orders command: load, one aggregate call, save."""

from __future__ import annotations

from orders.commands import (
    CancelOrder,
    ConfirmOrder,
    MarkOrderDelivered,
    MarkOrderShipped,
    PlaceOrder,
    RefuseOrderCancellation,
    RequestOrderCancellation,
)
from orders.domain.order import Catalog, Order, PaymentVault
from platform_core.eventsourcing.repository import AggregateNotFound, Repository


def place_order(
    command: PlaceOrder, *, orders: Repository[Order], catalog: Catalog, vault: PaymentVault
) -> None:
    """The card token goes to the vault, in the order's transaction; the order keeps the
    reference."""
    order = Order.place(
        order_id=command.order_id,
        customer_id=command.customer_id,
        items=command.items,
        shipping_address=command.shipping_address,
        payment_ref=vault.deposit(order_id=command.order_id, token=command.payment_token),
        catalog=catalog,
        clock=orders.clock,
    )
    orders.save(order)


def confirm_order(command: ConfirmOrder, *, orders: Repository[Order]) -> None:
    order = orders.get(str(command.order_id))
    order.confirm()
    orders.save(order)


def request_order_cancellation(
    command: RequestOrderCancellation, *, orders: Repository[Order]
) -> None:
    order = orders.get(str(command.order_id))
    if command.requested_by is not None and order.state.customer_id != command.requested_by:
        raise AggregateNotFound(f"Order {command.order_id} does not exist.")
    order.request_cancellation(command.reason)
    orders.save(order)


def cancel_order(command: CancelOrder, *, orders: Repository[Order]) -> None:
    order = orders.get(str(command.order_id))
    order.cancel(command.reason)
    orders.save(order)


def refuse_order_cancellation(
    command: RefuseOrderCancellation, *, orders: Repository[Order]
) -> None:
    order = orders.get(str(command.order_id))
    order.refuse_cancellation(command.reason)
    orders.save(order)


def mark_order_shipped(command: MarkOrderShipped, *, orders: Repository[Order]) -> None:
    order = orders.get(str(command.order_id))
    order.mark_shipped(shipment_id=command.shipment_id, tracking_number=command.tracking_number)
    orders.save(order)


def mark_order_delivered(command: MarkOrderDelivered, *, orders: Repository[Order]) -> None:
    order = orders.get(str(command.order_id))
    order.mark_delivered()
    orders.save(order)
