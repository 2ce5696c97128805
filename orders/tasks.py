"""Commands other contexts send to orders, as Celery tasks on the `orders` queue.

Primitives in, the command out to the bus, once per command id (see
`platform_core.commands.celery_commands`). Send with `send_command(confirm_order, order_id=...)`.
"""

from __future__ import annotations

from uuid import UUID

from orders.commands import CancelOrder, ConfirmOrder, RefuseOrderCancellation
from platform_core.commands.celery_commands import CommandTask, command_task

QUEUE = "orders"


@command_task(QUEUE)
def confirm_order(task: CommandTask, *, order_id: str, command_id: str) -> str:
    return task.execute(ConfirmOrder(order_id=UUID(order_id), command_id=UUID(command_id)))


@command_task(QUEUE)
def cancel_order(task: CommandTask, *, order_id: str, reason: str, command_id: str) -> str:
    return task.execute(
        CancelOrder(order_id=UUID(order_id), reason=reason, command_id=UUID(command_id))
    )


@command_task(QUEUE)
def refuse_order_cancellation(
    task: CommandTask, *, order_id: str, reason: str, command_id: str
) -> str:
    return task.execute(
        RefuseOrderCancellation(order_id=UUID(order_id), reason=reason, command_id=UUID(command_id))
    )
