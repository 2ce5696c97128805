"""Where commands between bounded contexts travel: one durable RabbitMQ queue per context.

Each command queue names a dead-letter exchange, and a worker declares the queue bound to
it on start (`DeclareDeadLetterQueues`). A message the broker cannot hand to a task (an
unknown task name, content a worker refuses, an expired TTL) is dead-lettered there
instead of being dropped, and moved from there into the platform's dead-letter store
(`platform_core.commands.dead_letter_queues`). A task that fails is not: its failure goes
to the store directly (`platform_core.commands.celery_commands`) and the message is acked.

Importing this module touches neither Django's app registry nor the broker, so the
project's Celery app can be defined with it while Django's settings are still loading.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import Task, bootsteps  # type: ignore[import-untyped]
from celery.exceptions import InvalidTaskError  # type: ignore[import-untyped]
from celery.worker.request import Request  # type: ignore[import-untyped]
from kombu.entity import Exchange, Queue

logger = logging.getLogger(__name__)

DEAD_LETTER_EXCHANGE = "x-dead-letter-exchange"


def dead_letter_exchange(queue: str) -> Exchange:
    return Exchange(f"{queue}.dlx", type="fanout", durable=True)  # type: ignore[no-untyped-call]


def command_queue(name: str) -> Queue:
    """The durable queue of commands to the context `name`."""
    return Queue(  # type: ignore[no-untyped-call]
        name,
        Exchange(name, type="direct", durable=True),  # type: ignore[no-untyped-call]
        routing_key=name,
        durable=True,
        queue_arguments={DEAD_LETTER_EXCHANGE: dead_letter_exchange(name).name},
    )


def dead_letter_queue(name: str) -> Queue:
    """Where RabbitMQ puts the messages rejected from the command queue `name`."""
    return Queue(f"{name}.dead", dead_letter_exchange(name), durable=True)  # type: ignore[no-untyped-call]


class GuardedRequest(Request):  # type: ignore[misc]
    """A task message whose body is not Celery's `[args, kwargs, embed]` (a known task's
    name over a body of anything else) is invalid. Celery's own Request fails to unpack it
    while the worker takes the message, which stops the worker; RabbitMQ hands the message
    to the restarted worker, which stops again, and every context's commands wait. Raised
    as InvalidTaskError, Celery rejects it instead: to the queue's dead-letter queue, and
    from there into the dead-letter store."""

    def __init__(self, message: Any, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(message, *args, **kwargs)
        except (ValueError, TypeError) as error:
            raise InvalidTaskError(f"malformed task body: {error!r}") from error


class PlatformTask(Task):  # type: ignore[misc]
    """The project app's base task (`Celery(task_cls=...)`): messages it cannot take apart
    are rejected, not fatal to the worker."""

    Request = GuardedRequest


def route_to_context_queue(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any
) -> dict[str, str] | None:
    """Celery router: a command task goes to the queue of the context that accepts it."""
    queue = getattr(task, "context_queue", None)
    return {"queue": queue} if queue else None


def celery_settings(*, queues: Sequence[str], broker_url: str) -> dict[str, Any]:
    """The platform's Celery defaults (Django's `CELERY_*` settings override them).

    With the in-memory broker, tasks run eagerly in the sending process, after the
    sender's transaction commits, so the embedded default needs no broker and no worker.
    """
    in_process = broker_url.startswith("memory://")
    return {
        "task_queues": [command_queue(name) for name in queues],
        "task_routes": (route_to_context_queue,),
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A task still running when the broker connection drops will be redelivered anyway.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "broker_connection_retry_on_startup": True,
        # Publisher confirms: `apply_async` returns once RabbitMQ holds the message.
        "broker_transport_options": {} if in_process else {"confirm_publish": True},
        "task_always_eager": in_process,
        # An eager task's failure is dead-lettered; it must not fail the sender's request.
        "task_eager_propagates": False,
        # Keep Django's logging: its records carry the correlation id.
        "worker_hijack_root_logger": False,
    }


def dead_lettered_queues(app: Any) -> list[str]:
    """The app's queues that have a dead-letter queue."""
    return [
        queue.name
        for queue in app.amqp.queues.values()
        if DEAD_LETTER_EXCHANGE in (queue.queue_arguments or {})
    ]


class DeclareDeadLetterQueues(bootsteps.StartStopStep):  # type: ignore[misc]
    """Worker consumer step: declare the dead-letter queue of every command queue, and
    reject to it a message whose body does not decode (Celery's own answer logs it and
    acknowledges it: the message would be gone)."""

    requires = {"celery.worker.consumer.connection:Connection"}

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        super().__init__(consumer, **kwargs)
        # Read when the task consumer is made, after every step's __init__.
        consumer.on_decode_error = _reject_undecodable

    def start(self, consumer: Any) -> None:
        channel = consumer.connection.default_channel
        for name in dead_lettered_queues(consumer.app):
            dead_letter_queue(name).bind(channel).declare()  # type: ignore[no-untyped-call]


def _reject_undecodable(message: Any, error: Exception) -> None:
    logger.critical(
        "a message on %s does not decode (%s: %s); rejected to its dead-letter queue",
        (message.delivery_info or {}).get("routing_key", "?"),
        type(error).__name__,
        error,
    )
    message.reject(requeue=False)
