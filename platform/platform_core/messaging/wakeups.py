"""Wake the outbox relay and the projector when another process commits.

Migration 0007 puts a statement-level AFTER INSERT trigger on `outbox` that NOTIFYs a
channel with an empty payload. Nearly every command here stores integration events with
its domain events, so that one channel wakes the projector too. There is no trigger on
`event_store`: PostgreSQL lets one notifying transaction commit at a time, through its WAL
flush, which halved what 16 concurrent writers could append (bench/eventstore.py,
0.86x -> 0.35-0.42x of raw inserts); appends that publish nothing are seen on the
projector's poll or by the `CatchUpWatch`. PostgreSQL delivers a notification only when
the writing transaction commits (never after a rollback) and folds the repeats of one
transaction into one. A `CommitListener` LISTENs on a connection of its own and sets the
`threading.Event` a worker loop waits on between rounds; the loops still poll, at a long
interval, as a safety net.

SQLite has no notifications. There the embedded process's own commits set the events
(`Runtime.log_changed`, `Runtime.outbox_changed`) and the listener does nothing.

A commit's notification can come while its events are still hidden: the PostgreSQL log
shows an event only once every older transaction has ended (`platform_core.storage.sql_store`),
and the end of an older transaction that appended no events notifies nobody. A
`CatchUpWatch` after each catch-up brings the projector back soon in that case.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import sql

from platform_core.eventsourcing.retry import RetryPolicy
from platform_core.storage import pg
from platform_core.storage.backends import backend

logger = logging.getLogger(__name__)

# Migration 0007 copies this name: keep them in step.
OUTBOX_CHANNEL = "platform_outbox"
# How the listening sessions show in pg_stat_activity (unless OPTIONS name one).
APPLICATION_NAME = "platform-commit-listener"
# After a lost connection: up to 0.1 s, 0.2 s, 0.4 s ... 10 s, with jitter.
RECONNECT_BACKOFF = RetryPolicy(max_attempts=1_000_000, base_delay=0.1, max_delay=10)
# Whether a committed event lies beyond the checkpoint of a running (not stopped)
# projection: one index probe per checkpoint, in the log order of `sql_store.read_all`.
_PG_BEHIND = """SELECT EXISTS (
    SELECT FROM projection_checkpoints c, LATERAL (
        SELECT FROM event_store e
        WHERE (e.transaction_id, e.position) > (c.transaction_id::text::xid8, c.position)
        ORDER BY e.transaction_id, e.position LIMIT 1
    ) later
    WHERE c.name = ANY(%s) AND c.error = ''
)"""


class CommitListener:
    """Sets the events of `wakes[channel]` on every notification on `channel`.

    A daemon thread holds an autocommit connection of its own and reconnects with backoff
    when it drops. After each LISTEN (the first and every reconnection) it sets every
    event once, so the worker's next round finds what committed while nobody listened.
    Does nothing unless the database is PostgreSQL.
    """

    def __init__(
        self,
        wakes: Mapping[str, threading.Event | Sequence[threading.Event]],
        *,
        using: str = DEFAULT_DB_ALIAS,
        backoff: RetryPolicy = RECONNECT_BACKOFF,
        check_seconds: float = 0.5,
    ) -> None:
        self._wakes = {
            channel: [events] if isinstance(events, threading.Event) else list(events)
            for channel, events in wakes.items()
        }
        self._using = using
        self._backoff = backoff
        self._check_seconds = check_seconds  # how soon the thread notices close()
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._backend_pid: int | None = None
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return backend(self._using).notifies

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend of the listening connection; None while not listening."""
        return self._backend_pid

    def start(self) -> CommitListener:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(
                target=self._run,
                args=(self._connection_params(),),
                name=f"commit-listener-{'-'.join(self._wakes)}",
                daemon=True,
            )
            self._thread.start()
        return self

    def wait_listening(self, timeout: float) -> bool:
        """Whether the listener is listening within `timeout` (at once if it is disabled)."""
        return not self.enabled or self._listening.wait(timeout)

    def close(self) -> None:
        """Stop listening and wait (a bounded time) for the thread to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._check_seconds + 5)

    def __enter__(self) -> CommitListener:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _connection_params(self) -> dict[str, Any]:
        params = connections[self._using].get_connection_params()
        # Django's cursor class and type adapters serve its own queries; LISTEN needs neither.
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.setdefault("application_name", APPLICATION_NAME)
        params.setdefault("connect_timeout", 10)  # so close() is never stuck behind a connect
        return params

    def _run(self, params: dict[str, Any]) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.Connection.connect(**params, autocommit=True) as conn:
                    self._listen(conn)
                    failures = 0
                    self._deliver(conn)
            except Exception as error:  # whatever it is, the thread must live on
                failures += 1
                self._lost(error, failures)
        self._listening.clear()

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        for channel in self._wakes:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        self._backend_pid = conn.info.backend_pid
        self._wake_all()
        self._listening.set()

    def _deliver(self, conn: psycopg.Connection[Any]) -> None:
        while not self._stop.is_set():
            for notify in conn.notifies(timeout=self._check_seconds):
                for wake in self._wakes.get(notify.channel, ()):
                    wake.set()

    def _lost(self, error: Exception, failures: int) -> None:
        was_listening = self._listening.is_set()
        self._listening.clear()
        self._backend_pid = None
        delay = self._backoff.delay(failures)
        logger.warning(
            "commit listener on %s: %s; reconnecting in %.1fs", ", ".join(self._wakes), error, delay
        )
        if was_listening:
            self._wake_all()  # the workers poll once rather than wait for the safety net
        self._stop.wait(delay)

    def _wake_all(self) -> None:
        for events in self._wakes.values():
            for wake in events:
                wake.set()


class CatchUpWatch:
    """Called after each catch-up (`ProjectionRunner.run_forever(on_idle=...)`): while a
    projection is behind committed events, sets `wake` after a short pause, doubling
    while it stays behind (up to `max_pause`), rather than leave them to the poll.

    After a catch-up, committed events it did not read were hidden behind an older open
    transaction (or came meanwhile, and their notification wakes the loop anyway).
    Projections stopped at a failing event keep their own retry schedule. On SQLite,
    writers are serial and nothing is ever hidden, so it does nothing.
    """

    def __init__(
        self,
        names: Sequence[str],
        wake: threading.Event,
        *,
        using: str = DEFAULT_DB_ALIAS,
        first_pause: float = 0.02,
        max_pause: float = 1.0,
    ) -> None:
        self._names = list(names)
        self._wake = wake
        self._using = using
        self._first_pause, self._max_pause = first_pause, max_pause
        self._pause = first_pause

    def __call__(self) -> None:
        if not self._behind():
            self._pause = self._first_pause
            return
        self._wake.wait(self._pause)  # a notification or a stop ends the pause early
        self._pause = min(self._pause * 2, self._max_pause)
        self._wake.set()

    def _behind(self) -> bool:
        if not backend(self._using).notifies:
            return False
        # Asked after every catch-up: prepared.
        rows = pg.fetchall(_PG_BEHIND, [self._names], using=self._using)
        return bool(rows and rows[0][0])
