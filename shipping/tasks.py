"""Commands other contexts send to shipping, as Celery tasks on the `shipping` queue."""

from __future__ import annotations

from typing import Any

from platform_core.commands.celery_commands import CommandTask, command_task
from platform_core.eventsourcing.serialization import from_primitives
from shipping.commands import CancelShipment, CreateShipment

QUEUE = "shipping"


@command_task(QUEUE)
def create_shipment(task: CommandTask, **command: Any) -> str:
    return task.execute(from_primitives(command, CreateShipment))


@command_task(QUEUE)
def cancel_shipment(task: CommandTask, **command: Any) -> str:
    return task.execute(from_primitives(command, CancelShipment))
