"""Commands other contexts send to payments, as Celery tasks on the `payments` queue.

Each takes the command's fields as primitives (see `serialization.to_primitives`) and runs
it once per command id. A gateway that is unavailable or times out raises, and Celery
retries with backoff; a decline is an outcome, recorded and published, not an error.
"""

from __future__ import annotations

from typing import Any

from payments.commands import ProcessPayment, RefundPayment
from platform_core.commands.celery_commands import CommandTask, command_task
from platform_core.eventsourcing.serialization import from_primitives

QUEUE = "payments"


@command_task(QUEUE)
def process_payment(task: CommandTask, **command: Any) -> str:
    return task.execute(from_primitives(command, ProcessPayment))


@command_task(QUEUE)
def refund_payment(task: CommandTask, **command: Any) -> str:
    return task.execute(from_primitives(command, RefundPayment))
