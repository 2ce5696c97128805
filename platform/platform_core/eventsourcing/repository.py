"""Loading aggregates by replay (from a snapshot when there is one) and saving them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from platform_core.eventsourcing.aggregate import Aggregate, Clock, utc_now
from platform_core.eventsourcing.errors import NotFound
from platform_core.eventsourcing.eventstore import AppendResult, EventMetadata, EventStore, NewEvent
from platform_core.eventsourcing.messages import ensure_context
from platform_core.eventsourcing.serialization import EventCodec, from_json, to_json
from platform_core.eventsourcing.snapshots import Snapshot, SnapshotStore

A = TypeVar("A", bound=Aggregate[Any])


class AggregateNotFound(NotFound):
    pass


class Repository(Generic[A]):
    """Loads and saves one aggregate type.

    With a snapshot store, a snapshot is written whenever a save crosses a multiple of
    `snapshot_every` events, and loading replays only the events after it.
    """

    def __init__(
        self,
        aggregate_type: type[A],
        *,
        store: EventStore,
        codec: EventCodec,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int = 100,
        on_append: Callable[[AppendResult], None] | None = None,
        publish: Callable[[str, Sequence[Any]], None] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._type = aggregate_type
        self.clock = clock
        self._store = store
        self._codec = codec
        self._snapshots = snapshots
        self._snapshot_every = snapshot_every
        self._on_append = on_append
        self._publish = publish

    def new(self, aggregate_id: str) -> A:
        """An aggregate with no events yet, on this repository's clock."""
        return self._type(aggregate_id, clock=self.clock)

    def find(self, aggregate_id: str) -> A | None:
        stream_id = self._type.stream_id_for(aggregate_id)
        aggregate = self._from_snapshot(aggregate_id, stream_id) or self.new(aggregate_id)
        decode = self._codec.decode
        for recorded in self._store.read_stream(stream_id, after_version=aggregate.version):
            aggregate.replay(decode(recorded.event_type, recorded.schema_version, recorded.data))
        return aggregate if aggregate.exists else None

    def get(self, aggregate_id: str) -> A:
        aggregate = self.find(aggregate_id)
        if aggregate is None:
            raise AggregateNotFound(f"{self._type.__name__} {aggregate_id} does not exist")
        return aggregate

    def save(self, aggregate: A) -> AppendResult | None:
        """Append the aggregate's new events; ConcurrencyError if someone else wrote first.

        `publish`, when given, receives the same events in the same transaction (the
        outbox uses it to store the integration events they translate to)."""
        pending = aggregate.collect_pending()
        if not pending:
            return None
        expected = aggregate.version - len(pending)
        result = self._store.append(
            self._type.stream_id_for(aggregate.id),
            self._type.category,
            expected,
            [self._new_event(event) for event in pending],
        )
        if self._on_append is not None:
            self._on_append(result)
        if self._publish is not None:
            self._publish(aggregate.id, pending)
        if self._snapshots is not None and self._crossed_snapshot(expected, aggregate.version):
            self._snapshots.save(
                Snapshot(
                    stream_id=self._type.stream_id_for(aggregate.id),
                    version=aggregate.version,
                    schema=self._type.snapshot_schema,
                    state=to_json(aggregate.state),
                )
            )
        return result

    def _crossed_snapshot(self, before: int, after: int) -> bool:
        return after // self._snapshot_every > before // self._snapshot_every

    def _from_snapshot(self, aggregate_id: str, stream_id: str) -> A | None:
        if self._snapshots is None:
            return None
        snapshot = self._snapshots.load(stream_id)
        if snapshot is None or snapshot.schema != self._type.snapshot_schema:
            return None
        state = from_json(snapshot.state, self._type.state_type)
        return self._type.from_snapshot(aggregate_id, snapshot.version, state, clock=self.clock)

    def _new_event(self, event: Any) -> NewEvent:
        event_type, schema_version, data = self._codec.encode(event)
        context = ensure_context()
        return NewEvent(
            event_type=event_type,
            schema_version=schema_version,
            data=data,
            metadata=EventMetadata(
                event_id=uuid.uuid4(),
                correlation_id=context.correlation_id,
                causation_id=context.causation_id,
                actor=context.actor,
                tenant=context.tenant,
            ),
        )
