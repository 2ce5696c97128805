"""Commands other contexts send to inventory, as Celery tasks on the `inventory` queue.

Primitives in, the command out to the bus, once per command id (see
`platform_core.commands.celery_commands`). Send with `send_command(restock_product, sku=...)`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from inventory.commands import CommitStock, ReleaseStock, ReserveStock, RestockProduct
from platform_core.commands.celery_commands import CommandTask, command_task
from platform_core.eventsourcing.serialization import from_primitives

QUEUE = "inventory"


@command_task(QUEUE)
def restock_product(task: CommandTask, *, sku: str, quantity: int, command_id: str) -> str:
    return task.execute(RestockProduct(sku=sku, quantity=quantity, command_id=UUID(command_id)))


@command_task(QUEUE)
def reserve_stock(task: CommandTask, **command: Any) -> str:
    return task.execute(from_primitives(command, ReserveStock))


@command_task(QUEUE)
def release_stock(task: CommandTask, **command: Any) -> str:
    return task.execute(from_primitives(command, ReleaseStock))


@command_task(QUEUE)
def commit_stock(task: CommandTask, **command: Any) -> str:
    return task.execute(from_primitives(command, CommitStock))
