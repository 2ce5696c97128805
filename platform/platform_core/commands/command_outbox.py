"""Commands leave through the outbox, like integration events.

`send_command` writes the command task as an outbox row in the sender's transaction, so a
command exists exactly when the change that decided it committed: a broker that is down
at that moment delays the command, it does not lose it. The relay then hands command rows
to `CeleryCommandPublisher` and the others to the event publisher, in two lanes
(`relay_lanes`): a broker that is down holds up only its own messages.

The publisher sends a batch of command tasks inside one AMQP transaction: RabbitMQ has
taken every message of the batch (persistent, on durable queues) when `tx.commit` returns,
at the cost of one round trip per batch rather than a publisher confirm per message. A
batch that fails is sent again whole; receivers deduplicate by command id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q

from platform_core.eventsourcing.messages import MessageContext
from platform_core.messaging import dead_letters
from platform_core.messaging.envelope import Envelope, Outgoing, Publisher, PublishReport
from platform_core.messaging.relay import Lane

logger = logging.getLogger(__name__)

# Outbox rows whose topic starts with this are command tasks for the context queue named
# after it ("command:inventory"), not integration events.
COMMAND_TOPIC = "command:"
CONTEXT_HEADER = "message_context"  # the task header carrying the sender's message context
BROKER_TIMEOUT = 10.0  # seconds a socket read or write to RabbitMQ may take
# Celery's own cap on the argument text it shows in logs and monitoring.
KWARGSREPR_LIMIT = 1024


def command_envelope(task: Any, kwargs: Mapping[str, Any], context: MessageContext) -> Envelope:
    """A command task as an outbox message: the task's name, its keyword arguments as
    JSON, and the sender's context."""
    extra = {name: value for name in ("actor", "tenant") if (value := getattr(context, name))}
    return Envelope(
        id=str(kwargs["command_id"]),
        type=task.name,
        source=f"/commands/{task.command_queue}",
        time=datetime.now(UTC),
        topic=f"{COMMAND_TOPIC}{task.command_queue}",
        key=str(kwargs["command_id"]),
        data=json.dumps(kwargs, default=str).encode(),
        correlation_id=context.correlation_id,
        causation_id=context.causation_id,
        extra=extra,
    )


def context_header(context: MessageContext) -> dict[str, str]:
    """A message context as a task header value (absent fields left out)."""
    return {name: value for name, value in asdict(context).items() if value}


def sent_context(envelope: Envelope) -> MessageContext:
    """The context a command envelope was sent in (see `command_envelope`)."""
    return MessageContext(
        correlation_id=envelope.correlation_id or "",
        causation_id=envelope.causation_id,
        actor=envelope.extra.get("actor"),
        tenant=envelope.extra.get("tenant"),
    )


def command_failure(
    *,
    task: str,
    queue: str,
    message_id: str,
    payload: str,
    context: MessageContext,
    attempts: int,
    task_id: str = "",
) -> dead_letters.Failure:
    """A command that failed for good, as the dead-letter store keeps it: what
    `celery_commands.redeliver` needs to run it again (the task's name, its arguments,
    the sender's context)."""
    task_header = {"task": task, "task_id": task_id} if task_id else {"task": task}
    return dead_letters.Failure(
        source=f"celery:{queue}",
        destination=task,
        message_id=message_id,
        payload=payload,
        headers={**task_header, **context_header(context)},
        attempts=attempts,
    )


class CeleryCommandPublisher:
    """Publishes command rows as Celery task messages (see the module docstring).

    With an eager app (the embedded default) each task runs here, in the relay, instead.
    """

    def __init__(self, app: Any, *, broker_url: str | None = None) -> None:
        self._app = app
        self._broker_url = broker_url  # the app's own unless given
        self._connection: Any = None
        self._declared: set[str] = set()  # queues declared on this connection

    def publish(self, batch: Sequence[Outgoing]) -> PublishReport:
        if self._app.conf.task_always_eager:
            for item in batch:
                self._run_here(item.envelope)
            return PublishReport(delivered=[item.row_id for item in batch])
        try:
            channel = self._channel()
            producer = self._app.amqp.Producer(channel, auto_declare=False)
            for item in batch:
                self._send(item.envelope, producer)
            channel.tx_commit()
        except Exception as error:
            logger.warning("could not publish %d commands: %r", len(batch), error)
            self.close()
            return PublishReport(failed={item.row_id: repr(error) for item in batch})
        return PublishReport(delivered=[item.row_id for item in batch])

    def _send(self, envelope: Envelope, producer: Any) -> None:
        # By name, to the queue the row names: the relay needs no import of the task, so
        # a command for a task it does not know cannot hold up the outbox.
        queue = _queue_of(envelope)
        if queue not in self._declared:
            # Once a connection, as the app declares it (its dead-letter arguments), so
            # that a message never goes to a queue that does not exist yet. Celery would
            # check its cache of declared entities on every message instead.
            self._app.amqp.queues[queue].bind(producer.channel).declare()
            self._declared.add(queue)
        self._app.send_task(
            envelope.type,
            kwargs=json.loads(envelope.data),
            headers={CONTEXT_HEADER: context_header(sent_context(envelope))},
            queue=queue,
            producer=producer,
            retry=False,
            declare=[],  # done above
            kwargsrepr=envelope.data.decode()[:KWARGSREPR_LIMIT],  # JSON already: no repr
        )

    def _run_here(self, envelope: Envelope) -> None:
        """Run the task in this process; what cannot even start (a task this process does
        not know, arguments it does not take) is dead-lettered like a worker's failure,
        rather than failing the relay's batch again and again."""
        context = sent_context(envelope)
        headers = {CONTEXT_HEADER: context_header(context)}
        try:
            task = self._app.tasks[envelope.type]
            task.apply_async(kwargs=json.loads(envelope.data), headers=headers)
        except Exception as error:
            failure = command_failure(
                task=envelope.type,
                queue=_queue_of(envelope),
                message_id=envelope.id,
                payload=envelope.data.decode(),
                context=context,
                attempts=1,
            )
            letter = dead_letters.record(failure, error)
            logger.error(
                "command %s %s dead-lettered as %s: %r",
                *(envelope.type, envelope.id, letter.pk, error),
            )

    def _channel(self) -> Any:
        if self._connection is None:
            # Publisher confirms and AMQP transactions exclude each other on a channel.
            # The timeouts keep a broker that blocks publishers (a memory or disk alarm)
            # from holding the relay's thread: the batch fails and its lane backs off.
            # No retry here either: the lane's backoff is the retry.
            connection = self._app.connection_for_write(
                self._broker_url,
                transport_options={
                    "confirm_publish": False,
                    "read_timeout": BROKER_TIMEOUT,
                    "write_timeout": BROKER_TIMEOUT,
                },
            )
            connection.ensure_connection(max_retries=0)
            connection.default_channel.tx_select()
            self._connection = connection
        return self._connection.default_channel

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # a connection that broke may fail to close: it is gone
                logger.debug("closing the command connection failed", exc_info=True)
            self._connection = None
            self._declared.clear()


def _queue_of(envelope: Envelope) -> str:
    """The context queue a command row names (`command:inventory` -> `inventory`)."""
    return envelope.topic.removeprefix(COMMAND_TOPIC)


def relay_lanes(*, commands: Publisher, events: Publisher) -> list[Lane]:
    """The relay's lanes: command rows to `commands`, every other row to `events`."""
    command_rows = Q(topic__startswith=COMMAND_TOPIC)
    return [Lane(publisher=commands, rows=command_rows), Lane(publisher=events, rows=~command_rows)]
