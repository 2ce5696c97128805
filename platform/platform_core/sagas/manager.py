"""Runs saga instances: locks, decides (`SagaProgress`), writes; and the deadline timers.

The semantics are in `platform_core.sagas.definition`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from django.db import close_old_connections, transaction

from platform_core.eventsourcing.aggregate import Clock, utc_now
from platform_core.eventsourcing.messages import message_context
from platform_core.messaging.envelope import Envelope
from platform_core.messaging.outbox import gathered
from platform_core.models import SagaInstance, SagaStepEntry
from platform_core.sagas.definition import Reply, SagaDefinition
from platform_core.sagas.progress import SagaProgress
from platform_core.storage.backends import backend
from platform_core.storage.heartbeats import SILENT, Heartbeat
from platform_core.storage.row_writer import RowWriter

logger = logging.getLogger(__name__)

Status = SagaInstance.Status


class SagaManager:
    """Runs the instances of one saga definition.

    Every entry point is one unit of work: it locks the instances it needs, lets a
    `SagaProgress` decide, then writes the instances, the history and the commands
    together (`_write`). Commands go to `send` in the order they were decided, each in
    the message context of the reply that caused it.
    """

    def __init__(
        self,
        definition: SagaDefinition,
        *,
        send: Callable[[Any], None],
        now: Clock = utc_now,
    ) -> None:
        self.definition = definition
        self._send = send
        self._now = now

    def handle(self, envelope: Envelope) -> None:
        """Consumer-group handler: start an instance or move one on."""
        with self.batch([envelope]) as handle:
            handle(envelope)

    @contextlib.contextmanager
    def batch(self, envelopes: Sequence[Envelope]) -> Iterator[Callable[[Envelope], None]]:
        """A unit of work over a batch of replies, inside the caller's transaction.

        The instances the batch names are locked in one query; the handler it gives moves
        them on in memory, one reply at a time (each in its own message context); on a
        clean exit everything is written in a few statements.
        """
        progress = SagaProgress(self.definition, self._now)
        replies = {envelope.id: Reply.of(envelope) for envelope in envelopes}
        instances = self._locked({self.definition.key_of(r) for r in replies.values()})

        def handle(envelope: Envelope) -> None:
            reply = replies[envelope.id]
            key = self.definition.key_of(reply)
            instance = instances.get(key)
            if instance is not None:
                progress.on_reply(instance, reply)  # a repeated start is recorded, ignored
            elif self.definition.starts(reply.type):
                instances[key] = progress.start(key, reply)
            elif reply.type in self.definition.aborted_by:
                # Aborted before its start was seen (the start failed and waits in the
                # dead letters, say): remembered, so that the start is ignored when it comes.
                instances[key] = progress.abort_unstarted(key, reply)
            else:
                logger.info("%s: no instance for %s %s", self.definition.name, reply.type, key)

        yield handle
        self._write(progress)

    def fire_deadlines(self, limit: int = 100, now: datetime | None = None) -> int:
        """Re-send or give up every step past its deadline; the instances touched.
        `now` stands for the manager's clock in this sweep (a test's jump in time)."""
        at = now or self._now()
        with transaction.atomic():
            due = list(
                SagaInstance.objects.select_for_update(skip_locked=True)
                .filter(
                    saga=self.definition.name,
                    status__in=[Status.RUNNING, Status.COMPENSATING],
                    deadline_at__lte=at,
                )
                .order_by("deadline_at", "key")[:limit]
            )
            progress = SagaProgress(self.definition, lambda: at)
            for instance in due:
                progress.on_deadline(instance)
            self._write(progress)
        return len(due)

    # Operator actions (admin), on an instance the caller has locked; each answers
    # whether the instance was in a state for it.
    def retry_step(self, instance: SagaInstance) -> bool:
        """Send the current step's command (and any refused compensation) again now,
        under a new command id, with a fresh deadline and give-up time."""
        return self._act(lambda progress: progress.retry(instance))

    def compensate(self, instance: SagaInstance, reason: str) -> bool:
        """Give up a running instance, stuck or not: undo what it did, the step in doubt
        included."""
        return self._act(lambda progress: progress.give_up(instance, reason))

    def resolve(self, instance: SagaInstance, note: str) -> bool:
        """Mark a stuck compensation settled by hand, after the operator fixed things."""
        return self._act(lambda progress: progress.resolve(instance, note))

    def _act(self, action: Callable[[SagaProgress], bool]) -> bool:
        progress = SagaProgress(self.definition, self._now)
        with transaction.atomic():
            acted = action(progress)
            self._write(progress)
        return acted

    def _locked(self, keys: set[str]) -> dict[str, SagaInstance]:
        """The existing instances of `keys`, locked until commit (in key order, so two
        batches never wait on each other in a cycle)."""
        if not keys:
            return {}
        rows = SagaInstance.objects.filter(saga=self.definition.name, key__in=sorted(keys))
        found = backend().locked(rows.order_by("key"), _LOCKED, [self.definition.name, list(keys)])
        return {instance.key: instance for instance in found}

    def _write(self, progress: SagaProgress) -> None:
        now = self._now()
        for instance in progress.touched.values():
            instance.updated_at = now
            if instance.id in progress.created:
                instance.created_at = now
        # One upsert of whole rows: Django's bulk_update builds a CASE per column and row,
        # which cost more CPU than everything else a batch of replies does.
        _instance_writer().upsert([_row(instance) for instance in progress.touched.values()])
        _history_writer().append(
            [
                {
                    "instance_id": entry.instance_id,
                    "step": entry.step,
                    "kind": entry.kind,
                    "message_id": entry.message_id,
                    "detail": entry.detail,
                    "at": now,
                }
                for entry in progress.history
            ]
        )
        with gathered():  # commands that go through the outbox: one INSERT for them all
            for outgoing in progress.commands:
                with message_context(outgoing.context):
                    self._send(outgoing.command)


@functools.cache
def _instance_writer() -> RowWriter:
    return RowWriter(SagaInstance)


@functools.cache
def _history_writer() -> RowWriter:
    return RowWriter(SagaStepEntry, numbered=True)


def _row(instance: SagaInstance) -> dict[str, Any]:
    return {field.attname: getattr(instance, field.attname) for field in _COLUMNS}


_COLUMNS = SagaInstance._meta.concrete_fields
_LOCKED = "saga = %s AND key = ANY(%s) ORDER BY key FOR UPDATE"  # key order: see _locked


def run_timers(
    sagas: list[SagaManager],
    stop: threading.Event,
    wake: threading.Event,
    every: float = 1.0,
    heartbeat: Heartbeat = SILENT,
) -> None:
    """Fire due deadlines of every saga every `every` seconds until `stop` is set."""
    while not stop.is_set():
        try:
            for saga in sagas:
                saga.fire_deadlines()
            heartbeat.beat()
        except Exception as error:
            logger.exception("saga deadlines failed; retrying")
            close_old_connections()
            heartbeat.failed(error)
        wake.wait(every)
    heartbeat.stop()
