"""The event store port: what every adapter (memory, SQLite, PostgreSQL) offers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol
from uuid import UUID

import msgspec

# What `str(LogPosition)` writes: ASCII digits only (str.isdigit also takes "٣" and "²").
LOG_POSITION_PATTERN = r"^[0-9]+\.[0-9]+$"


class ConcurrencyError(Exception):
    """The stream was not at the version the writer expected."""

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__(f"stream {stream_id!r} is not at expected version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version


class LogPosition(NamedTuple):
    """A place in the global log.

    Readers order the log by (transaction_id, position): on PostgreSQL a sequence value
    says when a row was inserted, not when it became visible, so the writing
    transaction's id comes first (see docs/architecture.md).
    """

    transaction_id: int
    position: int

    def __str__(self) -> str:
        return f"{self.transaction_id}.{self.position}"

    @classmethod
    def parse(cls, text: str) -> LogPosition:
        """Inverse of `str()`; raises ValueError on anything else."""
        if not re.fullmatch(LOG_POSITION_PATTERN, text):
            raise ValueError(f"not a log position: {text!r}")
        tx, _, pos = text.partition(".")
        return cls(int(tx), int(pos))


LOG_START = LogPosition(0, 0)


class EventMetadata(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Who and what caused an event; stored beside it as JSON."""

    event_id: UUID
    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None
    tenant: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class NewEvent:
    """An event about to be appended; `data` is its JSON document."""

    event_type: str
    data: bytes
    metadata: EventMetadata
    schema_version: int = 1


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An event as the store holds it.

    A msgspec Struct rather than a dataclass because readers build hundreds of thousands
    of them: construction is several times cheaper, and `gc=False` keeps them out of the
    cyclic garbage collector (they hold no references that could form a cycle), whose
    full collections otherwise dominated reading a large log.
    """

    position: int
    transaction_id: int
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    schema_version: int
    data: bytes
    metadata: EventMetadata
    recorded_at: datetime

    @property
    def log_position(self) -> LogPosition:
        return LogPosition(self.transaction_id, self.position)


@dataclass(frozen=True, kw_only=True, slots=True)
class AppendResult:
    """Where an append left the stream and the log."""

    stream_version: int
    log_position: LogPosition


class EventStore(Protocol):
    """Append-only storage of event streams plus one global, gap-safe log."""

    def append(
        self, stream_id: str, stream_type: str, expected_version: int, events: Sequence[NewEvent]
    ) -> AppendResult:
        """Append `events` after version `expected_version` (0: a new stream).

        Raises ConcurrencyError if the stream is at another version.
        """
        ...

    def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        """The stream's events with version > `after_version`, in version order."""
        ...

    def read_all(self, after: LogPosition = LOG_START, limit: int = 1000) -> list[RecordedEvent]:
        """Up to `limit` committed events after `after`, in log order.

        An event is returned only once no event can still commit before it, so a reader
        that resumes from the last position it saw never skips one.
        """
        ...

    def head(self) -> LogPosition:
        """The position of the last event `read_all` can return now (LOG_START if none)."""
        ...


encode_metadata = msgspec.json.Encoder().encode
decode_metadata = msgspec.json.Decoder(EventMetadata).decode
