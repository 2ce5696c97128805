"""In-memory adapters of the platform's ports, for unit tests and examples."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from platform_core.eventsourcing.eventstore import (
    LOG_START,
    AppendResult,
    ConcurrencyError,
    LogPosition,
    NewEvent,
    RecordedEvent,
)
from platform_core.eventsourcing.snapshots import Snapshot


class InMemoryEventStore:
    """An `EventStore` in a list; writers are serialised by a lock."""

    def __init__(self) -> None:
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._lock = threading.Lock()

    def append(
        self, stream_id: str, stream_type: str, expected_version: int, events: Sequence[NewEvent]
    ) -> AppendResult:
        with self._lock:
            stream = self._streams.setdefault(stream_id, [])
            if len(stream) != expected_version:
                raise ConcurrencyError(stream_id, expected_version)
            now = datetime.now(UTC)
            for offset, event in enumerate(events, start=1):
                position = len(self._log) + 1
                recorded = RecordedEvent(
                    position=position,
                    transaction_id=position,
                    stream_id=stream_id,
                    stream_type=stream_type,
                    version=expected_version + offset,
                    event_type=event.event_type,
                    schema_version=event.schema_version,
                    data=event.data,
                    metadata=event.metadata,
                    recorded_at=now,
                )
                self._log.append(recorded)
                stream.append(recorded)
            return AppendResult(stream_version=len(stream), log_position=self._head())

    def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        with self._lock:
            return list(self._streams.get(stream_id, [])[after_version:])

    def read_all(self, after: LogPosition = LOG_START, limit: int = 1000) -> list[RecordedEvent]:
        with self._lock:
            return self._log[after.position : after.position + limit]

    def head(self) -> LogPosition:
        with self._lock:
            return self._head()

    def _head(self) -> LogPosition:
        return self._log[-1].log_position if self._log else LOG_START


class InMemorySnapshotStore:
    """A `SnapshotStore` in a dict."""

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}

    def load(self, stream_id: str) -> Snapshot | None:
        return self._snapshots.get(stream_id)

    def save(self, snapshot: Snapshot) -> None:
        self._snapshots[snapshot.stream_id] = snapshot
