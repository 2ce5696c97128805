"""The outbox relay: publishes unpublished outbox rows in order and marks each one only
after the broker acknowledged it.

Rows go out by lane (`Lane`): in the deployment, command rows to RabbitMQ and the others
to Kafka, each lane in id order and backed off on its own, so a broker that refuses
holds up only the messages that go to it (one that does not answer blocks the relay's
thread while its client waits, each time its lane comes due). Only one relay publishes
at a time (a PostgreSQL advisory lock elects it), which keeps one aggregate's messages
in order; a second relay waits as a hot standby and takes over when the first one's
connection goes away, or when the first one hangs (PostgreSQL ends a leader's session
idle `leader_idle_seconds`). No transaction is held while waiting for the broker, so the
relay never holds back readers of the event log. A relay killed between publishing and
marking republishes those rows on restart: delivery is at-least-once and consumers
deduplicate by message id.
"""

from __future__ import annotations

import logging
import operator
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections, transaction
from django.db.models import F, IntegerField, Q, QuerySet, Value
from django.utils import timezone

from platform_core.eventsourcing.retry import RetryPolicy
from platform_core.messaging.envelope import Outgoing, Publisher, PublishReport
from platform_core.messaging.outbox import ENVELOPE_COLUMNS, envelope_from_row
from platform_core.models import OutboxMessage
from platform_core.storage import pg
from platform_core.storage.backends import backend
from platform_core.storage.heartbeats import SILENT, Heartbeat

logger = logging.getLogger(__name__)

# An arbitrary constant: the advisory lock key of the relay leader.
LEADER_LOCK_KEY = 0x6F7574626F78  # "outbox"
# How often a standby relay tries to take the leader's lock: a failover's pause.
STANDBY_RETRY_SECONDS = 0.5
# While the broker refuses messages: 0.5 s, 1 s, 2 s ... up to 30 s, with jitter.
BROKER_BACKOFF = RetryPolicy(max_attempts=1_000_000, base_delay=0.5, max_delay=30)


@dataclass(kw_only=True)
class Lane:
    """The outbox rows one publisher takes (`rows`, a filter on the outbox), relayed in
    id order and backed off on their own: a broker that is down holds up its lane only."""

    publisher: Publisher
    rows: Q = field(default_factory=Q)
    failures: int = 0
    retry_at: float = 0.0  # the relay's clock reading before which the lane waits


class OutboxRelay:
    """Publishes the outbox through one publisher, or through `lanes` (integration events
    to Kafka, commands to RabbitMQ), as leader among the relays of the deployment."""

    def __init__(
        self,
        publisher: Publisher | None = None,
        *,
        lanes: Sequence[Lane] = (),
        batch_size: int = 1000,
        backoff: RetryPolicy = BROKER_BACKOFF,
        using: str = DEFAULT_DB_ALIAS,
        on_published: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        leader_idle_seconds: float = 60.0,
    ) -> None:
        if publisher is not None:
            lanes = [*lanes, Lane(publisher=publisher)]
        if (len(lanes) != 1 and publisher is not None) or not lanes:
            raise TypeError("give one publisher or lanes")
        self._lanes = list(lanes)
        self._batch_size = batch_size
        self._backoff = backoff
        self._using = using
        self._on_published = on_published
        self._clock = clock
        self._leader_idle_seconds = leader_idle_seconds
        self._leader_connection: object | None = None
        self._left_behind = False  # the last round filled a batch: more may be waiting
        self._queries: dict[tuple[int, ...], tuple[str, tuple[Any, ...]]] = {}

    def relay_once(self, *, waiting: bool = False) -> tuple[int, int]:
        """Publish the next batch of the lanes that are due: (rows acknowledged, rows that
        failed). With `waiting`, a lane backing off after a failure is left out until its
        time. One query reads the rows of every lane due."""
        now = self._clock()
        lanes = [lane for lane in self._lanes if not (waiting and lane.retry_at > now)]
        # In id order, whatever order the union gives them in.
        rows = sorted(self._due(lanes), key=operator.itemgetter(0)) if lanes else self._idle()
        delivered: list[int] = []
        failed: dict[int, str] = {}
        self._left_behind = False
        for index, lane in enumerate(lanes):
            batch = [
                Outgoing(row_id=row[0], envelope=envelope_from_row(row[:-1]))
                for row in rows
                if row[-1] == index
            ]
            self._left_behind |= len(batch) == self._batch_size
            report = self._publish(lane, batch)
            delivered += report.delivered
            failed.update(report.failed)
            self._back_off(lane, refused=len(report.failed))
        self._record(delivered, failed)
        return len(delivered), len(failed)

    def _idle(self) -> list[Any]:
        """Every lane backs off: the leader says it is alive all the same, or its session
        would end as a hung one's does (`leader_idle_seconds`)."""
        if self._leader_connection is not None:
            pg.fetchall("SELECT 1", (), using=self._using)
        return []

    @staticmethod
    def _publish(lane: Lane, batch: Sequence[Outgoing]) -> PublishReport:
        """A publisher that raises rather than report its failures fails its whole batch:
        its lane backs off while the rows other lanes published are marked as usual."""
        if not batch:
            return PublishReport()
        try:
            return lane.publisher.publish(batch)
        except Exception as error:
            logger.exception("publishing %d messages failed", len(batch))
            return PublishReport(failed={item.row_id: repr(error) for item in batch})

    def _back_off(self, lane: Lane, *, refused: int) -> None:
        if not refused:  # published, or nothing left to publish (another relay did it)
            lane.failures, lane.retry_at = 0, 0.0
            return
        lane.failures += 1
        delay = self._backoff.delay(lane.failures)
        lane.retry_at = self._clock() + delay
        logger.warning("broker refused %d messages; retrying in %.1fs", refused, delay)

    def _record(self, delivered: Sequence[int], failed: Mapping[int, str]) -> None:
        """Mark what the brokers acknowledged; count an attempt on what they refused."""
        if not failed:
            self._mark_published(delivered)  # one statement: no transaction to open
        else:
            with transaction.atomic(using=self._using):
                self._mark_published(delivered)
                for row_id, error in failed.items():
                    OutboxMessage.objects.using(self._using).filter(id=row_id).update(
                        attempts=F("attempts") + 1, last_error=error[:2000]
                    )
        if self._on_published is not None and delivered:
            self._on_published(len(delivered))

    def _due(self, lanes: Sequence[Lane]) -> Sequence[Sequence[Any]]:
        """The next unpublished rows of each of `lanes` (up to a batch each) as plain
        tuples of `ENVELOPE_COLUMNS` and the index of the row's lane (model instances cost
        more to build than the publishing)."""
        if not backend(self._using).prepared:
            return [row for part in self._parts(lanes) for row in part]
        # One statement for every lane due (UNION ALL of a LIMIT each: a lane's backlog
        # never crowds out another's rows), compiled once for each set of lanes due and
        # run prepared. Binary results: the headers come back as a dict (psycopg's loader,
        # not the text one Django registers for JSON).
        chosen = tuple(self._lanes.index(lane) for lane in lanes)
        if chosen not in self._queries:
            first, *others = self._parts(lanes)
            union = first.union(*others, all=True)
            self._queries[chosen] = union.query.get_compiler(using=self._using).as_sql()
        sql, params = self._queries[chosen]
        return pg.fetchall(sql, params, using=self._using, binary=True)

    def _parts(self, lanes: Sequence[Lane]) -> list[QuerySet[OutboxMessage, Any]]:
        unpublished = OutboxMessage.objects.using(self._using).filter(published_at__isnull=True)
        return [
            unpublished.filter(lane.rows)
            .annotate(lane=Value(n, output_field=IntegerField()))
            .order_by("id")
            .values_list(*ENVELOPE_COLUMNS, "lane")[: self._batch_size]
            for n, lane in enumerate(lanes)
        ]

    def _mark_published(self, row_ids: Sequence[int]) -> None:
        if not row_ids:
            return
        backend(self._using).mark_published(row_ids, timezone.now())

    def drain(self) -> int:
        """Publish until the outbox is empty or a batch fails; the rows acknowledged."""
        total = 0
        while True:
            delivered, failed = self.relay_once()
            total += delivered
            if failed or not delivered:
                return total

    def backlog(self) -> int:
        return OutboxMessage.objects.using(self._using).filter(published_at__isnull=True).count()

    def run_forever(
        self,
        stop: threading.Event,
        wake: threading.Event,
        idle_seconds: float = 1.0,
        heartbeat: Heartbeat = SILENT,
        linger: float = 0.0,
    ) -> None:
        """Relay while leader, woken after commits or every `idle_seconds`; a lane whose
        broker fails backs off exponentially while the others go on.

        After a round it waits for the next wake-up unless a batch came back full: a
        commit since the round began has set `wake` already, so a round that found rows
        need not be followed by one that finds none (two queries a lane for nothing).
        A round that sent rows is followed by none for `linger` seconds from its start:
        under load the commits of that pause go out together, one query and one update
        a lane for all of them; the first row after a quiet spell goes out at once."""
        while not stop.is_set():
            wake.clear()
            began = self._clock()
            try:
                if not self._lead():
                    # A standby's round is no progress of the relay: a leader that hangs
                    # holding the lock must show as stalled, standbys or not.
                    stop.wait(min(idle_seconds, STANDBY_RETRY_SECONDS))
                    continue
                delivered, failed = self.relay_once(waiting=True)
            except Exception as error:
                logger.exception("outbox relay batch failed")
                close_old_connections()
                heartbeat.failed(error)
                stop.wait(self._backoff.delay(1))
                continue
            backing_off = [lane for lane in self._lanes if lane.retry_at > self._clock()]
            if failed or backing_off:  # a lane whose broker refuses makes no progress
                heartbeat.failed(RuntimeError(self._refusal(failed, backing_off)))
            else:
                heartbeat.beat()
            if delivered and not self._left_behind:
                stop.wait(max(0.0, began + linger - self._clock()))
            if not (delivered and self._left_behind):
                wake.wait(self._until_a_lane_is_due(idle_seconds))
        self._resign()
        heartbeat.stop()

    @staticmethod
    def _refusal(failed: int, backing_off: Sequence[Lane]) -> str:
        waiting = ", ".join(type(lane.publisher).__name__ for lane in backing_off)
        return f"the broker refused {failed} message(s)" + (
            f"; backing off: {waiting}" if waiting else ""
        )

    def _until_a_lane_is_due(self, idle_seconds: float) -> float:
        waits = [lane.retry_at - self._clock() for lane in self._lanes if lane.retry_at]
        return max(0.0, min([idle_seconds, *waits]))

    def _lead(self) -> bool:
        """Whether this relay is the leader, taking the lock if it is free."""
        database = backend(self._using)
        if not database.advisory_locks:
            return True  # no other process can relay: the single embedded one does
        connection = connections[self._using]
        connection.ensure_connection()
        if self._leader_connection is connection.connection:
            return True  # a session lock lives as long as the connection that took it
        held = database.try_advisory_lock(LEADER_LOCK_KEY)
        self._leader_connection = connection.connection if held else None
        if held:
            database.scan_in_index_order()
            # A leader stopped or hung keeps its connection, hence the lock: the server
            # ends a session that says nothing for this long, and a standby takes over.
            database.end_session_when_idle(self._leader_idle_seconds)
        return held

    def _resign(self) -> None:
        connection = connections[self._using]
        if self._leader_connection is not None and connection.connection is self._leader_connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [LEADER_LOCK_KEY])
        self._leader_connection = None
