"""The PostgreSQL global log never skips an event that commits after a later one.

A sequence value says when a row was inserted, not when it became visible: a transaction
can take position 10, stay open while another commits position 11, and commit after a
reader has moved past 11. These tests make that happen, first deterministically with two
threads (Django connections are per thread), then at random with writer processes.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import wait
from uuid import uuid4

import pytest
from django.db import connection, connections, transaction

from platform_core.eventsourcing.eventstore import (
    LOG_START,
    EventMetadata,
    NewEvent,
)
from platform_core.storage.sql_store import event_store_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WRITERS = 8
EVENTS_PER_WRITER = 1000
STREAMS_PER_WRITER = 3
TIMEOUT = 30


def new_event() -> NewEvent:
    return NewEvent(
        event_type="FundsDeposited",
        data=b'{"amount":"10.00"}',
        metadata=EventMetadata(event_id=uuid4()),
    )


def naive_positions_after(position: int) -> list[int]:
    """What a reader that orders the log by position alone would return."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT position FROM event_store WHERE position > %s ORDER BY position", [position]
        )
        return [row[0] for row in cursor.fetchall()]


def committed_positions() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT position FROM event_store ORDER BY position")
        return [row[0] for row in cursor.fetchall()]


class UncommittedAppend:
    """Appends one event on its own thread and connection, and commits only when told."""

    def __init__(self, stream_id: str) -> None:
        self.event = new_event()
        self._stream_id = stream_id
        self._appended = threading.Event()
        self._release = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._done: Future[None] | None = None
        self.position = 0

    def __enter__(self) -> UncommittedAppend:
        self._done = self._pool.submit(self._write)
        self._appended.wait(TIMEOUT)
        if self._done.done() or not self.position:
            self.__exit__()
            self._done.result()  # the writer failed: raise its error here
        return self

    def commit(self) -> None:
        assert self._done is not None
        self._release.set()
        self._done.result(timeout=TIMEOUT)

    def __exit__(self, *exc_info: object) -> None:
        self._release.set()
        self._pool.shutdown(wait=True)

    def _write(self) -> None:
        try:
            with transaction.atomic():
                result = event_store_for().append(self._stream_id, "Account", 0, [self.event])
                self.position = result.log_position.position
                self._appended.set()
                if not self._release.wait(TIMEOUT):
                    raise TimeoutError("never told to commit")
        finally:
            self._appended.set()  # wakes __enter__ when the append itself failed
            connection.close()


def test_an_event_that_commits_late_is_read_before_the_later_event_it_preceded() -> None:
    store = event_store_for()
    store.append("account-0", "Account", 0, [new_event()])
    checkpoint = store.read_all(LOG_START)[-1].log_position
    naive_checkpoint = checkpoint.position

    with UncommittedAppend("account-a") as slow:
        fast = new_event()
        fast_position = store.append("account-b", "Account", 0, [fast]).log_position.position
        assert slow.position < fast_position

        assert store.read_all(checkpoint) == []
        assert store.head() == checkpoint
        assert naive_positions_after(naive_checkpoint) == [fast_position]
        naive_checkpoint = fast_position

        slow.commit()

    recorded = store.read_all(checkpoint)
    assert [e.metadata.event_id for e in recorded] == [
        slow.event.metadata.event_id,
        fast.metadata.event_id,
    ]
    assert [e.position for e in recorded] == [slow.position, fast_position]
    assert store.read_all(recorded[-1].log_position) == []
    assert store.head() == recorded[-1].log_position
    # The position-ordered reader already passed the slow event's position: it is lost.
    assert naive_positions_after(naive_checkpoint) == []


def write_events(writer: int) -> None:
    """A writer process: transactions of 1-5 appends over its own few streams.

    The streams are private to the writer, so no append ever conflicts: what is under test
    is the global log's order, not optimistic concurrency.
    """
    rng = random.Random(writer)
    store = event_store_for()
    versions = {f"writer-{writer}-account-{n}": 0 for n in range(STREAMS_PER_WRITER)}
    written = 0
    try:
        while written < EVENTS_PER_WRITER:
            size = min(rng.randint(1, 5), EVENTS_PER_WRITER - written)
            pending = dict(versions)
            with transaction.atomic(), connection.cursor() as cursor:
                for _ in range(size):
                    stream_id = rng.choice(list(pending))
                    store.append(stream_id, "Account", pending[stream_id], [new_event()])
                    pending[stream_id] += 1
                    if rng.random() < 0.5:
                        # Widens the window in which later transactions commit first.
                        cursor.execute("SELECT pg_sleep(random() * 0.003)")
            versions = pending
            written += size
    finally:
        connections.close_all()


class LogTail:
    """Follows the log from its last position, as a projector does, noting what it saw.

    Beside it runs the naive reader that orders by position alone, to show what it misses.
    """

    def __init__(self) -> None:
        self.store = event_store_for()
        self.position = LOG_START
        self.seen: list[int] = []
        self.highest = 0
        self.late = 0
        self.naive_seen: list[int] = []

    def poll(self) -> bool:
        """Read one batch; False once nothing more is visible."""
        self.naive_seen += naive_positions_after(max(self.naive_seen, default=0))
        batch = self.store.read_all(self.position, limit=500)
        for event in batch:
            if event.position < self.highest:
                self.late += 1
            self.highest = max(self.highest, event.position)
            self.seen.append(event.position)
        if batch:
            self.position = batch[-1].log_position
        return bool(batch)


def tail_until_writers_exit(tail: LogTail, writers: list[multiprocessing.Process]) -> None:
    running = writers
    while running:
        if not tail.poll():
            # Nothing visible yet: wait for an exit or a moment, rather than spin.
            wait([writer.sentinel for writer in running], timeout=0.005)
        running = [writer for writer in running if writer.is_alive()]
    while tail.poll():
        pass


def test_a_reader_tailing_the_log_sees_every_event_of_concurrent_writers_exactly_once() -> None:
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=write_events, args=(n,)) for n in range(WRITERS)]
    connections.close_all()  # a forked child must not share the parent's socket
    try:
        for writer in writers:
            writer.start()
        tail = LogTail()
        tail_until_writers_exit(tail, writers)
    finally:
        for writer in writers:
            writer.join(TIMEOUT)
            if writer.is_alive():
                writer.kill()

    assert [writer.exitcode for writer in writers] == [0] * WRITERS
    committed = committed_positions()
    assert len(committed) == WRITERS * EVENTS_PER_WRITER
    assert len(tail.seen) == len(set(tail.seen))
    assert sorted(tail.seen) == committed
    assert tail.late > 0, "no event committed out of position order: the test proved nothing"
    missed = set(committed) - set(tail.naive_seen)
    assert missed, "a reader ordering by position alone would have missed nothing"
