"""One log read shared by the projections that stand at the same place.

Projections that started together (every one from 0 after a reset, or a fresh deployment)
move through the log in step: each batch, each of them asks for the same events. Reading
them once for all halves a two-projection catch-up's reading and building of events.
"""

from __future__ import annotations

from platform_core.eventsourcing.eventstore import EventStore, LogPosition, RecordedEvent


class SharedReads:
    """`EventStore.read_all` that hands a full batch it has just read to the next caller
    asking for the same place.

    Reusing a read across transactions is safe because the log below the read horizon
    never changes: `read_all` returns only events of transactions older than every one
    still running, so no event can later appear between two events it returned. Only a
    full batch is kept: a short one ended at the head, where a fresh read may find more.
    """

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._kept: tuple[LogPosition, list[RecordedEvent]] | None = None

    def read_all(self, after: LogPosition, limit: int) -> list[RecordedEvent]:
        kept = self._kept
        if kept is not None and kept[0] == after and len(kept[1]) >= limit:
            return kept[1][:limit]
        events = self._store.read_all(after, limit)
        self._kept = (after, events) if len(events) == limit else None
        return events

    def forget(self) -> None:
        """Drop the kept batch (the projector is idle: memory goes back)."""
        self._kept = None
