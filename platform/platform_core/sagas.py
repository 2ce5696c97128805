"""Orchestrated sagas, declared as data.

A saga is a list of steps. Each step sends a command and waits for a reply: integration
events that mean success or failure. After the last step the saga is completed; a failure,
a step given up on, or an aborting event (say, the customer cancels) compensates the
steps done, in reverse, then the saga is compensated.

A step whose command was sent and whose reply has not come is *in doubt*: it may have
happened. It is never compensated blind: its compensation goes to the participant, whose
compensations are outcome-aware and order-independent (a refund before its charge
refunds the charge when it lands), so what is undone is what actually happened. Every
reply is applied, however late: a success that comes after its step was compensated
has its compensation sent again.

Deadlines never end a saga. A silent step is re-sent with exponential backoff (the same
command id, so receivers deduplicate); after `stuck_after` re-sends the instance is
flagged stuck for a person, and goes on re-sending. A step with a compensation is given
up after `give_up_after` and compensated; a step without one cannot be undone and is
re-sent until it answers. Compensations are re-sent until they answer; one its
participant refuses is recorded, flagged and passed.

Instances and an append-only step history are stored (`saga_instances`, `saga_steps`).
Replies come from a consumer group (Kafka, or in-process); commands leave through `send`,
which must publish only after commit (Celery's `send_command` writes them to the outbox).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from platform_core import pg
from platform_core.messages import message_context
from platform_core.messaging import Envelope
from platform_core.models import SagaInstance, SagaStepEntry
from platform_core.outbox import gathered
from platform_core.row_writer import RowWriter
from platform_core.saga_progress import SagaProgress

logger = logging.getLogger(__name__)

Data = dict[str, Any]
# (saga data, command id) -> the command to send
CommandBuilder = Callable[[Mapping[str, Any], uuid.UUID], Any]
Status = SagaInstance.Status


@dataclass(frozen=True, kw_only=True)
class Reply:
    """An integration event as a saga sees it."""

    type: str
    id: str
    data: Mapping[str, Any]
    # The id of the command whose handling published it, when known.
    caused_by: str | None = None

    @classmethod
    def of(cls, envelope: Envelope) -> Reply:
        return cls(
            type=envelope.type,
            id=envelope.id,
            data=msgspec.json.decode(envelope.data),
            caused_by=envelope.causation_id,
        )


@dataclass(frozen=True, kw_only=True)
class Step:
    name: str
    command: CommandBuilder
    succeeded_on: frozenset[str]
    failed_on: frozenset[str] = frozenset()
    compensation: CommandBuilder | None = None
    # Replies confirming the compensation; none: the compensation is sent and not awaited.
    compensated_on: frozenset[str] = frozenset()
    # Replies saying the participant cannot compensate (a refund the gateway refuses).
    compensation_failed_on: frozenset[str] = frozenset()
    # Replies saying the step can no longer be undone at all (the carrier took the
    # parcel): the compensation came too late and the saga goes on forward. Only the
    # pivot (the last step with a compensation) may say so.
    too_late_on: frozenset[str] = frozenset()
    # The first wait for a reply; each re-send waits twice as long, up to `max_wait`.
    deadline: timedelta = timedelta(seconds=30)
    max_wait: timedelta = timedelta(minutes=4)
    # Re-sends before the instance is flagged stuck (it goes on re-sending).
    stuck_after: int = 3
    # How long a step with a compensation may stay silent before it is compensated.
    give_up_after: timedelta = timedelta(minutes=10)
    # What of a success reply to keep in the saga's data for later steps.
    keep: Callable[[Reply], Mapping[str, Any]] | None = None

    def wait(self, resends: int) -> timedelta:
        """How long to wait for a reply after the command's `resends`-th re-send."""
        doubled = self.deadline * (1 << min(resends, 16))  # a bound that keeps it finite
        return min(doubled, max(self.max_wait, self.deadline))

    @property
    def may_give_up(self) -> bool:
        """A step that can be undone may be abandoned in doubt; one that cannot, never."""
        return self.compensation is not None


@dataclass(frozen=True, kw_only=True)
class SagaDefinition:
    name: str
    started_by: str
    key_of: Callable[[Reply], str]
    initial_data: Callable[[Reply], Data]
    steps: tuple[Step, ...]
    aborted_by: frozenset[str] = frozenset()
    # The command that says the outcome once compensation can no longer turn out too
    # late (e.g. cancel the order, with the reason).
    on_compensation: Callable[[Mapping[str, Any], str, uuid.UUID], Any] | None = None
    # The command sent when compensation came too late and the saga went on (e.g. tell
    # the order its cancellation was refused).
    on_resumed: Callable[[Mapping[str, Any], str, uuid.UUID], Any] | None = None

    def __post_init__(self) -> None:
        for index, step in enumerate(self.steps):
            later = [s.name for s in self.steps[index + 1 :] if s.compensation is not None]
            if step.too_late_on and later:
                raise ValueError(
                    f"{step.name} may turn out final, so no step after it may be undone"
                    f" ({', '.join(later)} may)"
                )

    @property
    def event_types(self) -> frozenset[str]:
        """Every event type the saga listens to."""
        types = {self.started_by, *self.aborted_by}
        for step in self.steps:
            types |= (
                step.succeeded_on
                | step.failed_on
                | step.compensated_on
                | step.compensation_failed_on
                | step.too_late_on
            )
        return frozenset(types)


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
        now: Callable[[], datetime] = timezone.now,
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
            elif reply.type == self.definition.started_by:
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
        if connection.vendor == "postgresql":
            # Prepared, without the ORM's query building: every batch of replies does this.
            found = pg.instances(SagaInstance, _LOCKED, [self.definition.name, list(keys)])
        else:
            found = list(
                SagaInstance.objects.select_for_update()
                .filter(saga=self.definition.name, key__in=sorted(keys))
                .order_by("key")
            )
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
    sagas: list[SagaManager], stop: threading.Event, wake: threading.Event, every: float = 1.0
) -> None:
    """Fire due deadlines of every saga every `every` seconds until `stop` is set."""
    while not stop.is_set():
        try:
            for saga in sagas:
                saga.fire_deadlines()
        except Exception:
            logger.exception("saga deadlines failed; retrying")
            close_old_connections()
        wake.wait(every)
