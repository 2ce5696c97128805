"""Catch-up projections: read the global log from a checkpoint, update read models.

Each batch updates the read-model rows and the checkpoint in one transaction, so a
projector killed mid-batch neither skips nor applies an event twice. The checkpoint row
is locked for the batch, so two projector processes never run one projection at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from django.db import transaction

from platform_core.eventstore import EventStore, LogPosition, RecordedEvent
from platform_core.models import ProjectionCheckpoint
from platform_core.serialization import EventCodec

logger = logging.getLogger(__name__)

EventHandler = Callable[[Any, RecordedEvent], None]


class Projection:
    """A read model: `handlers()` maps event classes to methods taking (event, recorded)."""

    name: ClassVar[str]

    def handlers(self) -> Mapping[type[Any], EventHandler]:
        raise NotImplementedError


class ProjectionRunner:
    """Runs projections over the global log, each from its own checkpoint."""

    def __init__(
        self,
        projections: Sequence[Projection],
        *,
        store: EventStore,
        codec: EventCodec,
        batch_size: int = 500,
    ) -> None:
        self._store = store
        self._codec = codec
        self._batch_size = batch_size
        self._routes = {
            projection.name: {codec.name_of(cls): fn for cls, fn in projection.handlers().items()}
            for projection in projections
        }

    @property
    def names(self) -> list[str]:
        return list(self._routes)

    def run_batch(self, name: str) -> int:
        """Project the next batch for one projection; the number of events read."""
        routes = self._routes[name]
        with transaction.atomic():
            checkpoint, _ = ProjectionCheckpoint.objects.select_for_update().get_or_create(
                name=name
            )
            after = LogPosition(checkpoint.transaction_id, checkpoint.position)
            events = self._store.read_all(after, self._batch_size)
            for recorded in events:
                handler = routes.get(recorded.event_type)
                if handler is not None:
                    event = self._codec.decode(
                        recorded.event_type, recorded.schema_version, recorded.data
                    )
                    handler(event, recorded)
            if events:
                checkpoint.transaction_id, checkpoint.position = events[-1].log_position
                checkpoint.save(update_fields=["transaction_id", "position", "updated_at"])
        return len(events)

    def catch_up(self) -> int:
        """Run every projection until none finds a new event; the number of events read."""
        total = 0
        while True:
            read = sum(self.run_batch(name) for name in self._routes)
            total += read
            if read == 0:
                return total

    def checkpoint(self, name: str) -> LogPosition:
        row = ProjectionCheckpoint.objects.filter(name=name).first()
        return LogPosition(row.transaction_id, row.position) if row else LogPosition(0, 0)

    def run_forever(
        self, stop: threading.Event, wake: threading.Event, idle_seconds: float = 1.0
    ) -> None:
        """Catch up whenever woken (or every `idle_seconds`) until `stop` is set."""
        while not stop.is_set():
            wake.clear()
            try:
                self.catch_up()
            except Exception:
                logger.exception("projection batch failed; retrying")
                stop.wait(idle_seconds)
            wake.wait(idle_seconds)
