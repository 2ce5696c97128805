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
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager

from django.db import transaction

from platform_core.eventsourcing.messages import MessageContext, message_context, new_correlation_id
from platform_core.eventsourcing.retry import RetryPolicy
from platform_core.messaging import dead_letters
from platform_core.messaging.dead_letters import envelope_headers, envelope_of
from platform_core.messaging.envelope import Envelope, MessageHandler
from platform_core.messaging.inbox import claim
from platform_core.models import DeadLetter
from platform_core.storage.connectivity import database_reachable

logger = logging.getLogger(__name__)

DEFAULT_RETRY = RetryPolicy()


class Outcome(enum.Enum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    DEAD_LETTERED = "dead-lettered"


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
        retry: RetryPolicy = DEFAULT_RETRY,
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

    def handle(self, envelope: Envelope, *, letter_id: str = "") -> Outcome:
        """Process one message with retries; dead-letter it when they run out (under
        `letter_id` when it is given: the letter it is being retried from)."""
        if not self.handles(envelope):
            return Outcome.IGNORED
        attempt = outage = 1
        while True:
            try:
                with transaction.atomic():
                    if not claim(self.name, [envelope.id]):
                        return Outcome.DUPLICATE
                    self._run([envelope])
                return Outcome.PROCESSED
            except Exception as error:
                # A broken connection is dropped here; while none opens, the database is
                # out of reach: no attempt is counted, the message waits for it.
                if not database_reachable():
                    logger.warning(
                        "%s: the database is out of reach (%s); %s waits",
                        *(self.name, error, envelope.id),
                    )
                    self._sleep(self._retry.delay(outage))
                    outage += 1
                    continue
                outage = 1
                if attempt == self._retry.max_attempts:
                    self._dead_letter(envelope, error, attempt, letter_id or envelope.id)
                    return Outcome.DEAD_LETTERED
                logger.warning(
                    "%s failed on %s (attempt %d): %s", self.name, envelope.type, attempt, error
                )
                self._sleep(self._retry.delay(attempt))
                attempt += 1

    def redeliver(self, letter: DeadLetter) -> bool:
        """Deliver a dead letter of this group again; True once its effect has happened.

        A message that was no CloudEvent is read again as it came (a fixed consumer may
        read it now); when it still is not one, that is a failure of the same letter."""
        try:
            envelope = envelope_of(letter)
        except ValueError as error:
            dead_letters.failed_again(letter, error)
            return False
        outcome = self.handle(envelope, letter_id=letter.message_id)
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

    def _dead_letter(
        self, envelope: Envelope, error: Exception, attempts: int, message_id: str
    ) -> None:
        logger.error("%s dead-lettered %s %s: %s", self.name, envelope.type, envelope.id, error)
        payload, encoding = dead_letters.payload_of(envelope.data)
        self.dead_letter(
            dead_letters.Failure(
                source=self.source,
                destination=envelope.topic,
                message_id=message_id,
                payload=payload,
                headers={**envelope_headers(envelope), **encoding},
                attempts=attempts,
            ),
            error,
        )

    def dead_letter(self, failure: dead_letters.Failure, error: Exception) -> None:
        """Record a dead letter, retrying (with backoff, reconnecting) until the store takes
        it: the message is not let go, nor the consumer stopped, by a database outage."""
        dead_letters.record_until_stored(
            failure, error, delays=self._retry, sleep=self._sleep, who=self.name
        )
