"""Commands other contexts send to payments, as Celery tasks on the `payments` queue, and
the payments context's periodic job (Celery beat, on the `maintenance` queue).

Each command task takes the command's fields as primitives (see
`serialization.to_primitives`) and runs it once per command id. A gateway that is
unavailable or times out raises, and Celery retries with backoff; a decline is an
outcome, recorded and published, not an error.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task  # type: ignore[import-untyped]

from payments.commands import ProcessPayment, RefundPayment
from payments.vault import prune_expired
from platform_core.commands.celery_commands import CommandTask, command_task
from platform_core.eventsourcing.serialization import from_primitives
from platform_core.tasks import MAINTENANCE_QUEUE

QUEUE = "payments"


@command_task(QUEUE)
def process_payment(task: CommandTask, **command: Any) -> str:
    return task.execute(from_primitives(command, ProcessPayment))


@command_task(QUEUE)
def refund_payment(task: CommandTask, **command: Any) -> str:
    return task.execute(from_primitives(command, RefundPayment))


@shared_task(  # type: ignore[untyped-decorator]
    name="payments.prune_token_vault", context_queue=MAINTENANCE_QUEUE, acks_late=True
)
def prune_token_vault() -> int:
    """Delete the card tokens past PAYMENT_TOKEN_TTL_SECONDS that no charge used."""
    return prune_expired()
