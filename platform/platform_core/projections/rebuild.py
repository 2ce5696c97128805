"""Rebuild a projection from the start of the log while reads keep answering.

The projection's handlers replay the whole log into shadow tables (`<table>__rebuild`),
with rows held in memory and written in bulk. Then, under the live checkpoint's row lock
(so the live projector of that projection waits), the shadow catches up with the last
events and its rows replace the live rows in one transaction: readers see the old rows
until the commit and the new ones after it, never an empty table. `committed` is never
called, so a replay pushes nothing to websocket clients.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.db import connection, connections, models, transaction

from platform_core.eventsourcing.eventstore import LOG_START, LogPosition, RecordedEvent
from platform_core.models import StoredEvent
from platform_core.projections.checkpoints import locked_checkpoint, reset_to
from platform_core.projections.collector import collector_paused
from platform_core.projections.projector import ProjectionRunner
from platform_core.projections.read_models import ReadState, TableRows, quoted_columns, shadow_model

Progress = Callable[[int], object]


@dataclass(frozen=True, kw_only=True, slots=True)
class RebuildReport:
    events: int
    seconds: float
    position: LogPosition


class ProjectionRebuild:
    """One rebuild of projection `name`; `progress` is told of each batch's event count.

    `fold` replays the log into the shadow tables without replacing the live ones (to
    compare them); give it a `shadow_suffix` of its own, so it never meets a rebuild."""

    def __init__(
        self,
        runner: ProjectionRunner,
        name: str,
        *,
        batch_size: int = 5000,
        flush_every: int = 100_000,
        max_cached_rows: int = 200_000,
        progress: Progress | None = None,
        shadow_suffix: str = "__rebuild",
    ) -> None:
        self._runner, self._name = runner, name
        self._batch_size, self._flush_every = batch_size, flush_every
        self._max_cached_rows = max_cached_rows
        self._progress = progress or (lambda done: None)
        self._shadows = {
            model: shadow_model(model, f"{model._meta.db_table}{shadow_suffix}")
            for model in runner.projection(name).tables
        }
        self._events = 0
        self._last: RecordedEvent | None = None

    @staticmethod
    def estimated_events() -> int:
        """Events in the log now (for a progress bar's total)."""
        return StoredEvent.objects.count()

    def run(self) -> RebuildReport:
        started = time.perf_counter()
        self._create_shadows()
        try:
            state = self._shadow_state()
            position = self._replay(state, self._read_ahead(LOG_START), LOG_START)
            with transaction.atomic():
                checkpoint = locked_checkpoint(self._name)
                position = self._replay(state, self._read_to_head(position), position)
                self._swap()
                reset_to(checkpoint, position, self._last)
        finally:
            self._drop_shadows()
        return RebuildReport(
            events=self._events, seconds=time.perf_counter() - started, position=position
        )

    @contextlib.contextmanager
    def fold(self) -> Iterator[dict[type[models.Model], type[models.Model]]]:
        """Replay the whole log into the shadow tables and yield them ({live model: its
        shadow}); drop them after. Neither the live tables nor the checkpoint change."""
        self._create_shadows()
        try:
            state = self._shadow_state()
            self._replay(state, self._read_to_head(LOG_START), LOG_START)
            yield dict(self._shadows)
        finally:
            self._drop_shadows()

    def _shadow_state(self) -> ReadState:
        return ReadState(
            {live: TableRows(shadow, fresh=True) for live, shadow in self._shadows.items()}
        )

    def _replay(
        self, state: ReadState, batches: Iterator[list[RecordedEvent]], position: LogPosition
    ) -> LogPosition:
        since_flush = 0
        for events in batches:
            if not events:
                break
            with collector_paused():  # see platform_core.projections.collector
                self._runner.apply(self._name, events, state)
                position, self._last = events[-1].log_position, events[-1]
                self._events += len(events)
                since_flush += len(events)
                self._progress(len(events))
                if since_flush >= self._flush_every:
                    self._flush(state)
                    since_flush = 0
        self._flush(state)
        return position

    def _read_to_head(self, position: LogPosition) -> Iterator[list[RecordedEvent]]:
        while events := self._runner.store.read_all(position, self._batch_size):
            yield events
            position = events[-1].log_position

    def _read_ahead(self, position: LogPosition) -> Iterator[list[RecordedEvent]]:
        """Batches up to the first short one, read by a thread a batch or two ahead, so that
        waiting for the database overlaps applying the batch before."""
        batches: queue.Queue[list[RecordedEvent] | BaseException] = queue.Queue(maxsize=2)
        stop = threading.Event()
        reader = threading.Thread(
            target=self._read_into, args=(batches, position, stop), name="rebuild-reader"
        )
        reader.start()
        try:
            while True:
                batch = batches.get()
                if isinstance(batch, BaseException):
                    raise batch
                yield batch
                if len(batch) < self._batch_size:
                    return
        finally:
            stop.set()
            while reader.is_alive():  # a reader blocked on a full queue needs room to stop
                with contextlib.suppress(queue.Empty):
                    batches.get_nowait()
                reader.join(0.01)

    def _read_into(
        self,
        batches: queue.Queue[list[RecordedEvent] | BaseException],
        position: LogPosition,
        stop: threading.Event,
    ) -> None:
        try:
            while not stop.is_set():
                events = self._runner.store.read_all(position, self._batch_size)
                batches.put(events)
                if len(events) < self._batch_size:
                    return
                position = events[-1].log_position
        except BaseException as error:
            batches.put(error)
        finally:
            connections.close_all()  # this thread's own connection

    def _flush(self, state: ReadState) -> None:
        state.flush()
        if state.cached_rows() > self._max_cached_rows:
            state.forget()

    def _create_shadows(self) -> None:
        self._drop_shadows()  # left over by a rebuild that was killed
        with connection.schema_editor() as editor:
            for shadow in self._shadows.values():
                editor.create_model(shadow)

    def _drop_shadows(self) -> None:
        with connection.cursor() as cursor:
            for shadow in self._shadows.values():
                cursor.execute(f"DROP TABLE IF EXISTS {_quoted_table(shadow)}")

    def _swap(self) -> None:
        with connection.cursor() as cursor:
            for live, shadow in self._shadows.items():
                columns = quoted_columns(live)
                cursor.execute(f"DELETE FROM {_quoted_table(live)}")
                cursor.execute(
                    f"INSERT INTO {_quoted_table(live)} ({columns}) "
                    f"SELECT {columns} FROM {_quoted_table(shadow)}"
                )


def _quoted_table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)
