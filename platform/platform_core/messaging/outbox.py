"""The transactional outbox: integration events are stored with the domain events that
caused them, in the same transaction, and relayed to the broker afterwards."""

from __future__ import annotations

import contextlib
import functools
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from platform_core.eventsourcing.messages import ensure_context
from platform_core.eventsourcing.serialization import EventCodec, to_json
from platform_core.messaging.envelope import Envelope
from platform_core.models import OutboxMessage
from platform_core.storage.row_writer import RowWriter

Translate = Callable[[Any], Sequence[Any]]


@dataclass
class _Held:
    envelopes: list[Envelope] = field(default_factory=list)
    wakes: set[threading.Event] = field(default_factory=set)


# What `Outbox.add` was given inside a `gathered()` block, written when it ends.
_gathering: ContextVar[_Held | None] = ContextVar("outbox_gathering", default=None)


@contextlib.contextmanager
def gathered() -> Iterator[None]:
    """Within the block, every `Outbox.add` is held and all of them are written in one
    INSERT at its end (a saga's batch sending a command for each reply it handled), with
    one wake-up after commit for each outbox, not one for each add."""
    held = _Held()
    token = _gathering.set(held)
    try:
        yield
    finally:
        _gathering.reset(token)
    _write(held.envelopes)
    for wake in held.wakes:
        transaction.on_commit(wake.set)


class Outbox:
    """Writes envelopes as outbox rows in the caller's transaction."""

    def __init__(self, wake: threading.Event | None = None) -> None:
        self._wake = wake

    def add(self, envelopes: Sequence[Envelope]) -> None:
        if not envelopes:
            return
        held = _gathering.get()
        if held is not None:
            held.envelopes.extend(envelopes)
            if self._wake is not None:
                held.wakes.add(self._wake)
            return
        _write(envelopes)
        if self._wake is not None:
            transaction.on_commit(self._wake.set)


def _write(envelopes: Sequence[Envelope]) -> None:
    if not envelopes:
        return
    now = datetime.now(UTC)
    _outbox_writer().append(
        [
            {
                "topic": e.topic,
                "message_key": e.key,
                "message_id": uuid.UUID(e.id),
                "event_type": e.type,
                "source": e.source,
                "subject": e.subject,
                "occurred_at": e.time,
                "data": e.data.decode(),
                "headers": _headers(e),
                "created_at": now,
                "published_at": None,
                "attempts": 0,
                "last_error": "",
            }
            for e in envelopes
        ]
    )


@functools.cache
def _outbox_writer() -> RowWriter:
    return RowWriter(OutboxMessage, numbered=True)  # the database's numbers: the relay's order


def _headers(envelope: Envelope) -> dict[str, str]:
    headers = dict(envelope.extra)
    if envelope.correlation_id:
        headers["correlationid"] = envelope.correlation_id
    if envelope.causation_id:
        headers["causationid"] = envelope.causation_id
    return headers


# The outbox columns a message is built from, in the order `envelope_from_row` takes them.
ENVELOPE_COLUMNS = (
    "id", "topic", "message_key", "message_id", "event_type", "source", "subject",
    "occurred_at", "data", "headers",
)  # fmt: skip


def envelope_from_row(row: Sequence[Any]) -> Envelope:
    """The message of an outbox row read as plain values (`ENVELOPE_COLUMNS`)."""
    _, topic, key, message_id, event_type, source, subject, occurred_at, data, headers = row
    extra = dict(headers)
    return Envelope(
        id=str(message_id),
        type=event_type,
        source=source,
        time=occurred_at,
        subject=subject,
        topic=topic,
        key=key,
        data=data.encode(),
        correlation_id=extra.pop("correlationid", None),
        causation_id=extra.pop("causationid", None),
        extra=extra,
    )


def envelope_of(row: OutboxMessage) -> Envelope:
    return envelope_from_row([getattr(row, column) for column in ENVELOPE_COLUMNS])


class IntegrationEvents:
    """Turns one context's domain events into its integration events, into the outbox.

    `translate` maps a domain event to zero or more integration events (frozen
    dataclasses with a ClassVar `event_type` such as "orders.order-placed.v2").
    """

    def __init__(
        self, *, source: str, topic: str, translate: Translate, codec: EventCodec, outbox: Outbox
    ) -> None:
        self._source = source
        self._topic = topic
        self._translate = translate
        self._codec = codec
        self._outbox = outbox

    def publish(self, aggregate_id: str, domain_events: Sequence[Any]) -> None:
        context = ensure_context()
        now = datetime.now(UTC)
        self._outbox.add(
            [
                Envelope(
                    id=str(uuid.uuid4()),
                    type=self._codec.name_of(type(event)),
                    source=self._source,
                    time=now,
                    subject=aggregate_id,
                    topic=self._topic,
                    key=aggregate_id,
                    data=to_json(event),
                    correlation_id=context.correlation_id,
                    causation_id=context.causation_id,
                )
                for domain_event in domain_events
                for event in self._translate(domain_event)
            ]
        )
