"""What RabbitMQ dead-lettered from the command queues, moved into the dead-letter store.

A message the broker could not hand to a task (a task name no worker knows, content a
worker refuses, a message rejected, expired, or dropped by a length limit) lands in the
queue's `<queue>.dead` (`celery_queues`). `drain` takes each one out and records it as a
dead letter: source `celery:<queue>`, the reason from its `x-death` header, the task name,
the body exactly (base64 unless UTF-8 text), the headers and the properties. The broker's
message is acked only once the letter has committed: a drain that dies in between leaves
it in the queue, and the next drain, finding the letter of that message id, acks it
without recording it twice.

Retrying such a letter (`republish`) publishes the original message to its original
queue, marked with the letter's attempts at that moment (`dead_letter_retry`): if it is
dead-lettered again (a task still unknown), the drain updates the same letter (attempts,
error) once, however often the broker delivers that second death.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction

from platform_core.commands.celery_queues import dead_letter_queue, dead_lettered_queues
from platform_core.messaging import dead_letters
from platform_core.models import DeadLetter

logger = logging.getLogger(__name__)

RETRY_HEADER = "dead_letter_retry"
BROKER = "amqp"  # the letter header holding what the broker said: queue, reason, properties
_REASONS = {
    "rejected": "a worker rejected it (a task it does not know, content it refuses)",
    "expired": "it expired before a worker took it",
    "maxlen": "the queue was over its length limit",
    "delivery_limit": "it was delivered more times than the queue allows",
}
# Properties a republished message keeps (the broker set the others, or they are spent:
# an expiration would drop the message again).
_KEPT_PROPERTIES = ("content_type", "content_encoding", "priority", "correlation_id", "reply_to")


class DeadLettered(Exception):
    """The error of a letter RabbitMQ dead-lettered: from which queue, and why."""


def drain(connection: Any, queues: Iterable[str], *, limit: int = 10_000) -> int:
    """Move up to `limit` messages from the dead-letter queue of each of `queues` into the
    store; the number moved. A failure to record leaves the message in its queue."""
    moved = 0
    for name in queues:
        queue = dead_letter_queue(name).bind(connection.default_channel)  # type: ignore[no-untyped-call]
        queue.declare()
        while moved < limit and (message := queue.get(no_ack=False)) is not None:
            keep(message, queue=name)
            message.ack()
            moved += 1
    return moved


def drain_app(app: Any) -> int:
    """`drain` every dead-letter queue of the Celery app's command queues, on its broker;
    nothing to do when tasks run in-process (the embedded default has no broker)."""
    if app.conf.task_always_eager:
        return 0
    with app.connection_for_write() as connection:
        moved = drain(connection, dead_lettered_queues(app))
    if moved:
        logger.warning("moved %d dead-lettered message(s) into the dead-letter store", moved)
    return moved


def keep(message: Any, *, queue: str) -> DeadLetter:
    """Record one dead-lettered message (see the module docstring); idempotent on its id."""
    headers = dict(message.headers or {})
    retry_mark = headers.pop(RETRY_HEADER, None)
    death = _last_death(headers)
    origin = str(death.get("queue") or queue)
    reason = str(death.get("reason") or "unknown")
    payload, encoding = dead_letters.payload_of(body_of(message))
    failure = dead_letters.Failure(
        source=f"celery:{origin}",
        destination=str(headers.get("task") or origin),
        message_id=message_id(message, headers),
        payload=payload,
        headers={**headers, **encoding, BROKER: _broker_facts(message, death, origin, reason)},
        attempts=1,
    )
    task = f" (task {headers['task']!r})" if headers.get("task") else ""
    error = DeadLettered(f"{reason}: {_REASONS.get(reason, 'RabbitMQ said so')}{task}")
    with transaction.atomic():
        letter = (
            DeadLetter.objects.select_for_update()
            .filter(source=failure.source, message_id=failure.message_id)
            .first()
        )
        if letter is not None and not _new_death(letter, retry_mark):
            return letter
        return dead_letters.record(failure, error)


def message_id(message: Any, headers: Mapping[str, Any]) -> str:
    """The message's own id: a Celery task's id, else the AMQP message id or correlation id,
    else a digest of the body and the headers the broker did not add."""
    properties = message.properties or {}
    for found in (headers.get("id"), *map(properties.get, ("message_id", "correlation_id"))):
        if found:
            return str(found)
    kept = {k: v for k, v in headers.items() if not _death_header(k)}
    text = json.dumps(kept, sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(body_of(message) + b"\0" + text).hexdigest()


def body_of(message: Any) -> bytes:
    """The body's bytes: py-amqp hands over text when it could decode the body with the
    message's content encoding, which encodes it back to the same bytes."""
    body = message.body
    return body.encode(message.content_encoding or "utf-8") if isinstance(body, str) else body


def _new_death(letter: DeadLetter, retry_mark: Any) -> bool:
    """A first death is recorded once; a republished message's death once per retry (the
    mark is the letter's attempts when it was republished)."""
    try:
        return retry_mark is not None and int(retry_mark) >= letter.attempts
    except (TypeError, ValueError):
        return False


def _last_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    deaths = headers.get("x-death")
    return deaths[0] if isinstance(deaths, list) and deaths else {}


def _death_header(name: str) -> bool:
    return name == "x-death" or name.startswith(("x-first-death-", "x-last-death-"))


def _broker_facts(
    message: Any, death: Mapping[str, Any], queue: str, reason: str
) -> dict[str, Any]:
    properties = message.properties or {}
    return {
        "queue": queue,
        "reason": reason,
        "exchange": death.get("exchange", ""),
        "routing_keys": death.get("routing-keys", []),
        "properties": {k: properties[k] for k in _KEPT_PROPERTIES if properties.get(k)},
    }


def from_broker(letter: DeadLetter) -> bool:
    """Whether RabbitMQ dead-lettered the letter's message (rather than a task failing)."""
    return isinstance(letter.headers.get(BROKER), dict) and "x-death" in letter.headers


def republish(letter: DeadLetter, app: Any) -> bool:
    """Publish a broker letter's message again, as it came, to the queue it was
    dead-lettered from; True once the broker has it (publisher confirms)."""
    facts = letter.headers[BROKER]
    queue = str(facts["queue"])
    headers = {
        k: v
        for k, v in letter.headers.items()
        if k not in (BROKER, dead_letters.ENCODING) and not _death_header(k)
    }
    headers[RETRY_HEADER] = letter.attempts
    properties = dict(facts.get("properties") or {})
    properties.setdefault("content_type", "application/octet-stream")
    with app.connection_for_write() as connection:
        producer = app.amqp.Producer(connection.default_channel, auto_declare=False)
        declared = app.amqp.queues.get(queue)
        producer.publish(
            dead_letters.raw_payload(letter),
            exchange="",
            routing_key=queue,
            headers=headers,
            message_id=letter.message_id,
            delivery_mode=2,
            declare=[declared] if declared is not None else [],
            retry=False,
            **properties,
        )
    return True
