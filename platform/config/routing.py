"""Where messages go between contexts in this deployment: commands to their context's
Celery task, integration events to the consumer groups that act on them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from inventory import events as inventory_events
from inventory import integration as inventory_integration
from inventory import tasks as inventory_tasks
from inventory.commands import CommitStock, ReleaseStock, ReserveStock, RestockProduct
from orders import events as orders_events
from orders import integration as orders_integration
from orders import tasks as orders_tasks
from orders.commands import CancelOrder, ConfirmOrder, RefuseOrderCancellation
from payments import events as payments_events
from payments import tasks as payments_tasks
from payments.commands import ProcessPayment, RefundPayment
from platform_core.commands.celery_commands import send_command
from platform_core.eventsourcing.serialization import to_primitives
from platform_core.messaging.consumers import ConsumerGroup
from platform_core.sagas.manager import SagaManager
from shipping import events as shipping_events
from shipping import tasks as shipping_tasks
from shipping.commands import CancelShipment, CreateShipment

COMMAND_TASKS: Mapping[type[Any], Any] = {
    ConfirmOrder: orders_tasks.confirm_order,
    CancelOrder: orders_tasks.cancel_order,
    RefuseOrderCancellation: orders_tasks.refuse_order_cancellation,
    RestockProduct: inventory_tasks.restock_product,
    ReserveStock: inventory_tasks.reserve_stock,
    ReleaseStock: inventory_tasks.release_stock,
    CommitStock: inventory_tasks.commit_stock,
    ProcessPayment: payments_tasks.process_payment,
    RefundPayment: payments_tasks.refund_payment,
    CreateShipment: shipping_tasks.create_shipment,
    CancelShipment: shipping_tasks.cancel_shipment,
}

ALL_TOPICS = [
    orders_events.TOPIC,
    inventory_events.TOPIC,
    payments_events.TOPIC,
    shipping_events.TOPIC,
]


def send_to_context(command: Any) -> None:
    """Send a command to the context that owns it, as a Celery task, after commit."""
    send_command(COMMAND_TASKS[type(command)], **to_primitives(command))


def build_consumer_groups(
    handle: Callable[[Any], Any], sagas: Mapping[str, SagaManager]
) -> dict[str, ConsumerGroup]:
    """The consumer groups this deployment runs (`manage.py consume <name>`): one per saga,
    and one per context that reacts to other contexts' events."""
    groups = {
        name: ConsumerGroup(
            name,
            dict.fromkeys(manager.definition.event_types, manager.handle),
            topics=ALL_TOPICS,
            batch=manager.batch,
        )
        for name, manager in sagas.items()
    }
    groups["orders"] = ConsumerGroup(
        "orders", orders_integration.inbound(handle), topics=[shipping_events.TOPIC]
    )
    groups["inventory"] = ConsumerGroup(
        "inventory", inventory_integration.inbound(handle), topics=[shipping_events.TOPIC]
    )
    return groups
