"""The platform's periodic jobs as Celery tasks, scheduled by Celery beat
(`CELERY_BEAT_SCHEDULE` in the settings; `celery -A config.celery:app beat`)."""

from __future__ import annotations

from celery import current_app, shared_task  # type: ignore[import-untyped]

from platform_core.commands.dead_letter_queues import drain_app
from platform_core.operations.retention import prune

MAINTENANCE_QUEUE = "maintenance"


# The platform's router sends a task to the queue its `context_queue` names.
@shared_task(  # type: ignore[untyped-decorator]
    name="platform_core.prune_messages", context_queue=MAINTENANCE_QUEUE, acks_late=True
)
def prune_messages() -> dict[str, int]:
    """`manage.py prune_messages` with its defaults: what it deleted, table by table."""
    result = prune()
    return {
        "outbox": result.outbox,
        "inbox": result.inbox,
        "idempotency_keys": result.idempotency_keys,
        "loop_heartbeats": result.loop_heartbeats,
    }


@shared_task(  # type: ignore[untyped-decorator]
    name="platform_core.drain_dead_letter_queues",
    context_queue=MAINTENANCE_QUEUE,
    acks_late=True,
)
def drain_dead_letter_queues() -> int:
    """`manage.py dead_letters drain`: what RabbitMQ dead-lettered from the command queues,
    moved into the dead-letter store; how many messages."""
    return drain_app(current_app._get_current_object())
