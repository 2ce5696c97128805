"""Commands other contexts send to inventory, as Celery tasks on the `inventory` queue.

Primitives in, the command out to the bus, once per command id (see
`platform_core.celery_commands`). Send with `send_command(restock_product, sku=...)`.
"""

from __future__ import annotations

from uuid import UUID

from inventory.commands import RestockProduct
from platform_core.celery_commands import CommandTask, command_task

QUEUE = "inventory"


@command_task(QUEUE)
def restock_product(task: CommandTask, *, sku: str, quantity: int, command_id: str) -> str:
    return task.execute(RestockProduct(sku=sku, quantity=quantity, command_id=UUID(command_id)))
