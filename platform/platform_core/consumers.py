"""Idempotent consumers: route integration messages to handlers, at most one effect each.

Transport-agnostic: the Kafka consumer and the embedded in-process transport both feed
envelopes to a `ConsumerGroup`. The processed-message record (`inbox`) is written in the
same transaction as the handler's effects, so a redelivered message is skipped and a
crash before commit leaves no trace. A message that keeps failing is retried with
exponential backoff and jitter, then dead-lettered, and the stream moves on.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection, transaction

from platform_core import dead_letters, pg
from platform_core.messages import MessageContext, message_context, new_correlation_id
from platform_core.messaging import Envelope, MessageHandler, Outgoing, PublishReport
from platform_core.models import DeadLetter

logger = logging.getLogger(__name__)


class Outcome(enum.Enum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    DEAD_LETTERED = "dead-lettered"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits up to base * 2**(n-1).

    `jitter` is the random source of the waits (tests give a seeded one)."""

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 30.0
    jitter: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** min(attempt - 1, 32))
        return self.jitter.uniform(0, ceiling)


# One prepared statement whatever the number of ids.
_PG_CLAIM = """
INSERT INTO inbox (consumer, message_id, processed_at)
SELECT %s, message_id, %s FROM unnest(%s::text[]) AS message_id
ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id
"""


def claim(consumer: str, message_ids: Sequence[str]) -> set[str]:
    """Insert inbox rows for `message_ids`; the ids that were not there before."""
    if not message_ids:
        return set()
    if connection.vendor == "postgresql":
        rows = pg.fetchall(_PG_CLAIM, (consumer, datetime.now(UTC), list(message_ids)))
        return {row[0] for row in rows}
    now = datetime.now(UTC).isoformat()
    values = ", ".join(["(%s, %s, %s)"] * len(message_ids))
    params: list[str] = []
    for message_id in message_ids:
        params += [consumer, message_id, now]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO inbox (consumer, message_id, processed_at) VALUES {values} "
            "ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id",
            params,
        )
        return {row[0] for row in cursor.fetchall()}


# Opens a unit of work over the messages one transaction handles and gives the handler
# to call for each of them; the unit writes its effects when it closes (a saga locks all
# the instances a batch names in one query and writes them back in one).
BatchHandler = Callable[[Sequence[Envelope]], ContextManager[MessageHandler]]


class ConsumerGroup:
    """The handlers one consumer group runs, keyed by integration event type.

    With `batch`, the handlers only name the types the group takes: each batch of claimed
    messages goes through one `batch` unit instead.
    """

    def __init__(
        self,
        name: str,
        handlers: Mapping[str, MessageHandler],
        *,
        topics: Sequence[str],
        batch: BatchHandler | None = None,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.topics = list(topics)
        self._handlers = dict(handlers)
        self._batch = batch
        self._retry = retry
        self._sleep = sleep

    @property
    def source(self) -> str:
        return f"consumer:{self.name}"

    def handles(self, envelope: Envelope) -> bool:
        return envelope.type in self._handlers

    def handle_batch(self, envelopes: Sequence[Envelope]) -> list[Outcome]:
        """Process a batch in one transaction; on any failure, fall back to one by one."""
        outcomes: list[Outcome] = []
        try:
            with transaction.atomic():
                fresh = claim(self.name, [e.id for e in envelopes if self.handles(e)])
                to_run = []
                for envelope in envelopes:
                    if not self.handles(envelope):
                        outcomes.append(Outcome.IGNORED)
                    elif envelope.id in fresh:
                        fresh.discard(envelope.id)  # an id repeated in the batch runs once
                        to_run.append(envelope)
                        outcomes.append(Outcome.PROCESSED)
                    else:
                        outcomes.append(Outcome.DUPLICATE)
                self._run(to_run)
        except Exception:
            logger.info("a batch of %d failed; processing it one by one", len(envelopes))
            return [self.handle(envelope) for envelope in envelopes]
        return outcomes

    def handle(self, envelope: Envelope) -> Outcome:
        """Process one message with retries; dead-letter it when they run out."""
        if not self.handles(envelope):
            return Outcome.IGNORED
        for attempt in range(1, self._retry.max_attempts + 1):
            try:
                with transaction.atomic():
                    if not claim(self.name, [envelope.id]):
                        return Outcome.DUPLICATE
                    self._run([envelope])
                return Outcome.PROCESSED
            except Exception as error:
                if attempt == self._retry.max_attempts:
                    self._dead_letter(envelope, error, attempt)
                    return Outcome.DEAD_LETTERED
                logger.warning(
                    "%s failed on %s (attempt %d): %s", self.name, envelope.type, attempt, error
                )
                self._sleep(self._retry.delay(attempt))
        raise AssertionError("unreachable")

    def redeliver(self, letter: DeadLetter) -> bool:
        """Deliver a dead letter of this group again; True once its effect has happened."""
        outcome = self.handle(envelope_from(letter.headers, letter.payload))
        return outcome in (Outcome.PROCESSED, Outcome.DUPLICATE)

    def _run(self, envelopes: Sequence[Envelope]) -> None:
        """Handle claimed messages in order, each in its own message context."""
        if not envelopes:
            return
        with self._open(envelopes) as handle:
            for envelope in envelopes:
                context = MessageContext(
                    correlation_id=envelope.correlation_id or new_correlation_id(),
                    causation_id=envelope.id,
                    actor=self.source,
                )
                with message_context(context):
                    handle(envelope)

    def _open(self, envelopes: Sequence[Envelope]) -> ContextManager[MessageHandler]:
        if self._batch is not None:
            return self._batch(envelopes)
        return contextlib.nullcontext(self._dispatch)

    def _dispatch(self, envelope: Envelope) -> None:
        self._handlers[envelope.type](envelope)

    def _dead_letter(self, envelope: Envelope, error: Exception, attempts: int) -> None:
        logger.error("%s dead-lettered %s %s: %s", self.name, envelope.type, envelope.id, error)
        dead_letters.record(
            dead_letters.Failure(
                source=self.source,
                destination=envelope.topic,
                message_id=envelope.id,
                payload=envelope.data.decode(),
                headers=envelope_headers(envelope),
                attempts=attempts,
            ),
            error,
        )


def envelope_headers(envelope: Envelope) -> dict[str, str]:
    """The envelope's attributes as stored with a dead letter (see `envelope_from`)."""
    headers = {
        "id": envelope.id,
        "type": envelope.type,
        "source": envelope.source,
        "time": envelope.time.isoformat(),
        "subject": envelope.subject,
        "topic": envelope.topic,
        "key": envelope.key,
        **envelope.extra,
    }
    if envelope.correlation_id:
        headers["correlationid"] = envelope.correlation_id
    if envelope.causation_id:
        headers["causationid"] = envelope.causation_id
    return headers


def envelope_from(headers: Mapping[str, str], payload: str) -> Envelope:
    attrs = dict(headers)
    known = ("id", "type", "source", "time", "subject", "topic", "key")
    return Envelope(
        id=attrs["id"],
        type=attrs["type"],
        source=attrs["source"],
        time=datetime.fromisoformat(attrs["time"]),
        subject=attrs.get("subject", ""),
        topic=attrs.get("topic", ""),
        key=attrs.get("key", ""),
        data=payload.encode(),
        correlation_id=attrs.pop("correlationid", None),
        causation_id=attrs.pop("causationid", None),
        extra={k: v for k, v in attrs.items() if k not in known},
    )


class LocalPublisher:
    """The embedded transport: hands outbox batches straight to in-process consumer
    groups, with the same inbox and dead-letter handling as over Kafka."""

    def __init__(self, groups: Sequence[ConsumerGroup]) -> None:
        self._groups = list(groups)

    def publish(self, batch: Sequence[Outgoing]) -> PublishReport:
        for group in self._groups:
            wanted = [o.envelope for o in batch if o.envelope.topic in group.topics]
            if wanted:
                group.handle_batch(wanted)
        return PublishReport(delivered=[o.row_id for o in batch])

    def close(self) -> None:
        pass
