"""Catch-up projections: read the global log from a checkpoint, update read models.

Each batch updates the read-model rows and the checkpoint in one transaction, so a
projector killed mid-batch neither skips nor applies an event twice. The checkpoint row
is locked for the batch, so two projector processes never run one projection at once.

A projection whose handler raises stops at that event, because its later events may
depend on it: the events before it are committed, the error is recorded on the checkpoint
and in the dead-letter store, and the event is retried with a growing pause (or at once,
when an operator retries the dead letter) until it passes. Other projections go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import close_old_connections, models, transaction
from django.utils import timezone

from platform_core.eventsourcing.eventstore import EventStore, LogPosition, RecordedEvent
from platform_core.eventsourcing.retry import RetryPolicy
from platform_core.eventsourcing.serialization import EventCodec
from platform_core.messaging import dead_letters
from platform_core.models import ProjectionCheckpoint, StoredEvent
from platform_core.projections.checkpoints import (
    ProjectionFailed,
    advance,
    dead_letter_of,
    locked_checkpoint,
    mark_failed,
    position_of,
    projected_to,
    waiting_to_retry,
)
from platform_core.projections.collector import collector_paused
from platform_core.projections.read_models import ReadState, Row
from platform_core.projections.shared_reads import SharedReads
from platform_core.storage.backends import backend
from platform_core.storage.heartbeats import SILENT, Heartbeat

logger = logging.getLogger(__name__)

# After a failed round (the database gone, a connection killed): retry soon, then less often.
ROUND_BACKOFF = RetryPolicy(max_attempts=1_000_000, base_delay=0.5, max_delay=30)

EventHandler = Callable[[Any, RecordedEvent, ReadState], None]
Changes = Mapping[type[models.Model], Sequence[Row]]
RowKeys = Iterable[tuple[type[models.Model], Any]]
_Decoded = tuple[int, RecordedEvent, EventHandler, Any, RowKeys]
# Counting a large lag exactly would cost a long scan; past this it reads as the cap.
LAG_CAP = 100_000


class Projection:
    """A read model: the tables it owns and, per event class, a handler.

    Handlers take (event, recorded, state) and change rows through `state[Model]`; they
    must not write the database themselves, so that a rebuild can aim them at shadow
    tables.
    """

    name: ClassVar[str]
    tables: ClassVar[tuple[type[models.Model], ...]]

    def handlers(self) -> Mapping[type[Any], EventHandler]:
        raise NotImplementedError

    def row_keys(self, event: Any) -> RowKeys:
        """The rows (model, primary key) a handler of `event` will read, so that a batch
        loads them in one query per table; optional, rows not named load one by one."""
        return ()

    def committed(self, changed: Changes) -> None:
        """Called after a live batch committed, with the rows it changed (for pushes).

        Never called while rebuilding, so replaying history has no side effects."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Lag:
    """How far a projection is behind the log head."""

    events: int
    seconds: float


class ProjectionRunner:
    """Runs projections over the global log, each from its own checkpoint."""

    def __init__(
        self,
        projections: Sequence[Projection],
        *,
        store: EventStore,
        codec: EventCodec,
        batch_size: int = 500,
        max_batch_size: int = 8000,
        backoff: RetryPolicy = ROUND_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clock = clock
        # Projections at the same place (all of them, catching up from 0) read it once.
        self._reads = SharedReads(store)
        self._backoff = backoff
        self._codec = codec
        self._batch_size, self._max_batch_size = batch_size, max(batch_size, max_batch_size)
        # Far behind, batches grow (a full batch doubles the next one) so that the
        # per-batch costs (lock, checkpoint, commit, a query per table) spread thin.
        self._next_size: dict[str, int] = {}
        self._projections = {projection.name: projection for projection in projections}
        # Where this runner last left each projection (to skip those already at the head).
        self._reached: dict[str, LogPosition] = {}
        self._routes = {
            projection.name: {codec.name_of(cls): fn for cls, fn in projection.handlers().items()}
            for projection in projections
        }

    @property
    def names(self) -> list[str]:
        return list(self._routes)

    @property
    def store(self) -> EventStore:
        return self._store

    def projection(self, name: str) -> Projection:
        return self._projections[name]

    def apply(self, name: str, events: Sequence[RecordedEvent], state: ReadState) -> None:
        """Apply `events` to `state` in order; raises ProjectionFailed on the first error.

        The rows the events touch (`Projection.row_keys`) are loaded first, in one query
        per table, rather than one query per row."""
        decoded = self._decode(name, events)
        state.preload(keys for _, _, _, _, keys in decoded)
        for index, recorded, handler, event, _ in decoded:
            state.at(recorded.log_position)
            try:
                handler(event, recorded, state)
            except Exception as error:
                raise ProjectionFailed(name, recorded, events[:index]) from error

    def _decode(self, name: str, events: Sequence[RecordedEvent]) -> list[_Decoded]:
        routes, row_keys = self._routes[name], self._projections[name].row_keys
        decode = self._codec.decode
        decoded = []
        for index, recorded in enumerate(events):
            handler = routes.get(recorded.event_type)
            if handler is None:
                continue
            try:
                event = decode(recorded.event_type, recorded.schema_version, recorded.data)
                decoded.append((index, recorded, handler, event, row_keys(event)))
            except Exception as error:
                raise ProjectionFailed(name, recorded, events[:index]) from error
        return decoded

    def run_batch(self, name: str) -> int:
        """Project the next batch for one projection; the number of events it passed."""
        with collector_paused():
            return self._run_batch(name)

    def _run_batch(self, name: str) -> int:
        try:
            with transaction.atomic():
                checkpoint = locked_checkpoint(name)
                if waiting_to_retry(checkpoint):
                    return 0
                size = self._next_size.get(name, self._batch_size)
                events = self._reads.read_all(position_of(checkpoint), size)
                state = ReadState.live(self._projections[name].tables)
                self.apply(name, events, state)
                changed: Changes = state.flush()
                advance(checkpoint, events)
            self._reached[name] = position_of(checkpoint)
            self._next_size[name] = (
                min(size * 2, self._max_batch_size) if len(events) == size else self._batch_size
            )
        except ProjectionFailed as failure:
            self._reached.pop(name, None)
            self._next_size.pop(name, None)
            changed = self._stop_at(failure, position_of(checkpoint))
            events = list(failure.before)
        self._announce(name, changed)
        return len(events)

    def catch_up(self) -> int:
        """Run every projection until none finds a new event; the number of events read.

        A projection this runner has already brought to the log's head is skipped without
        a transaction: a projector polling an idle log costs one query per round."""
        total = 0
        while True:
            head = self._store.head()
            read = sum(
                self.run_batch(name) for name in self._routes if self._reached.get(name) != head
            )
            total += read
            if read == 0:
                self._reads.forget()
                return total

    def checkpoint(self, name: str) -> LogPosition:
        return projected_to(name)

    def lag(self, name: str) -> Lag:
        """Events stored after the checkpoint (up to LAG_CAP) and the age of the oldest."""
        unread = _stored_after(self.checkpoint(name))
        oldest = unread.order_by("transaction_id", "position").values_list(
            "recorded_at", flat=True
        )[:1]
        seconds = (timezone.now() - oldest[0]).total_seconds() if oldest else 0.0
        return Lag(events=unread[:LAG_CAP].count(), seconds=max(seconds, 0.0))

    def retry_now(self, name: str) -> bool:
        """Retry a stopped projection at once; whether it got past the failed event."""
        failed = ProjectionCheckpoint.objects.filter(name=name).values_list(
            "failed_position", flat=True
        )
        before = failed.first() or ""
        ProjectionCheckpoint.objects.filter(name=name).update(retry_at=None)
        self.run_batch(name)
        return failed.first() != before or not before

    def run_forever(
        self,
        stop: threading.Event,
        wake: threading.Event,
        idle_seconds: float = 1.0,
        on_idle: Callable[[], object] | None = None,
        heartbeat: Heartbeat = SILENT,
        linger: float = 0.0,
    ) -> None:
        """Catch up whenever woken (or every `idle_seconds`) until `stop` is set; call
        `on_idle` (e.g. to start requested rebuilds) after each catch-up, and tell
        `heartbeat` how each round went. A catch-up that read events is followed by none
        for `linger` seconds from its start: under load the events committed meanwhile
        are projected together, one transaction and one checkpoint update for all of
        them; the first event after a quiet spell is projected at once."""
        failures = 0
        while not stop.is_set():
            wake.clear()
            began = self._clock()
            try:
                read = self.catch_up()
                if on_idle is not None:
                    on_idle()
                failures = 0
                heartbeat.beat()
                if read:
                    stop.wait(max(0.0, began + linger - self._clock()))
            except Exception as error:
                failures += 1
                logger.exception("projection round failed (%d in a row); retrying", failures)
                close_old_connections()  # a connection that broke is reopened next round
                heartbeat.failed(error)
                stop.wait(self._backoff.delay(failures))
            wake.wait(idle_seconds)
        heartbeat.stop()

    def _stop_at(self, failure: ProjectionFailed, started: LogPosition) -> Changes:
        """Commit the events before the failed one and record the failure."""
        cause = failure.__cause__ or failure
        with transaction.atomic():
            checkpoint = locked_checkpoint(failure.name)
            if position_of(checkpoint) != started:
                return {}  # another projector moved on meanwhile
            state = ReadState.live(self._projections[failure.name].tables)
            self.apply(failure.name, failure.before, state)
            changed = state.flush()
            advance(checkpoint, failure.before)
            mark_failed(checkpoint, failure.recorded, cause)
        logger.error(
            "projection %s stopped at %s (%s): %s",
            failure.name,
            failure.recorded.log_position,
            failure.recorded.event_type,
            cause,
        )
        dead_letters.record(dead_letter_of(failure), cause)
        return changed

    def _announce(self, name: str, changed: Changes) -> None:
        if not any(changed.values()):
            return
        try:
            self._projections[name].committed(changed)
        except Exception:
            logger.exception("projection %s: announcing changed rows failed", name)


def _stored_after(after: LogPosition) -> models.QuerySet[StoredEvent]:
    """Stored events after `after` in log order, committed or not (a row comparison; on
    PostgreSQL the transaction id is an xid8, which the ORM cannot compare)."""
    where, params = backend().after_position(after.transaction_id, after.position)
    return StoredEvent.objects.extra(where=[where], params=params)
