"""Orchestrated sagas, declared as data.

A saga is a list of steps. Each step sends a command and waits for a reply: integration
events that mean success or failure. After the last step the saga is completed; a failure,
a step that never answers, or an aborting event (say, the customer cancels) compensates the
completed steps in reverse, then the saga is compensated. Every instance ends completed or
compensated, or is marked stuck with the reason when a compensation never answers.

Instances and an append-only step history are stored (`saga_instances`, `saga_steps`).
Replies come from a consumer group (Kafka, or in-process); commands leave through `send`,
which must publish only after commit (Celery's `send_command` does). Replies that do not
match the current step — duplicates, late or out-of-order ones — are recorded and ignored.
A step past its deadline is re-sent (the same command id, so receivers deduplicate) a
bounded number of times, then compensated. Commands are built with ids derived from the
instance and the step, so a re-sent command is recognised as the same command.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone

from platform_core.messaging import Envelope
from platform_core.models import SagaInstance, SagaStepEntry

logger = logging.getLogger(__name__)

Data = dict[str, Any]
# (saga data, command id) -> the command to send
CommandBuilder = Callable[[Mapping[str, Any], uuid.UUID], Any]
Status = SagaInstance.Status
# A completed saga can still be aborted (an order cancelled after confirmation, before it
# shipped): everything it did is then undone.
ABORTABLE = (Status.RUNNING, Status.COMPLETED)


@dataclass(frozen=True, kw_only=True)
class Reply:
    """An integration event as a saga sees it."""

    type: str
    id: str
    data: Mapping[str, Any]

    @classmethod
    def of(cls, envelope: Envelope) -> Reply:
        return cls(type=envelope.type, id=envelope.id, data=msgspec.json.decode(envelope.data))


@dataclass(frozen=True, kw_only=True)
class Step:
    name: str
    command: CommandBuilder
    succeeded_on: frozenset[str]
    failed_on: frozenset[str] = frozenset()
    compensation: CommandBuilder | None = None
    # Replies confirming the compensation; none: the compensation is sent and not awaited.
    compensated_on: frozenset[str] = frozenset()
    deadline: timedelta = timedelta(seconds=30)
    max_resends: int = 2
    # What of a success reply to keep in the saga's data for later steps.
    keep: Callable[[Reply], Mapping[str, Any]] | None = None


@dataclass(frozen=True, kw_only=True)
class SagaDefinition:
    name: str
    started_by: str
    key_of: Callable[[Reply], str]
    initial_data: Callable[[Reply], Data]
    steps: tuple[Step, ...]
    aborted_by: frozenset[str] = frozenset()
    # The command that ends a compensated saga (e.g. cancel the order with the reason).
    on_compensated: Callable[[Mapping[str, Any], str, uuid.UUID], Any] | None = None

    @property
    def event_types(self) -> frozenset[str]:
        """Every event type the saga listens to."""
        types = {self.started_by, *self.aborted_by}
        for step in self.steps:
            types |= step.succeeded_on | step.failed_on | step.compensated_on
        return frozenset(types)


def command_id(instance: SagaInstance, step: str, action: str) -> uuid.UUID:
    return uuid.uuid5(instance.id, f"{step}:{action}")


class SagaManager:
    """Runs the instances of one saga definition."""

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
        reply = Reply.of(envelope)
        if reply.type == self.definition.started_by:
            self._start(reply)
            return
        key = self.definition.key_of(reply)
        instance = (
            SagaInstance.objects.select_for_update()
            .filter(saga=self.definition.name, key=key)
            .first()
        )
        if instance is None:
            logger.info("%s: no instance for %s %s", self.definition.name, reply.type, key)
            return
        self._on_reply(instance, reply)
        instance.save()

    def fire_deadlines(self, limit: int = 100, now: datetime | None = None) -> int:
        """Re-send or give up on every step past its deadline (as of `now`); the
        instances touched."""
        with transaction.atomic():
            due = list(
                SagaInstance.objects.select_for_update(skip_locked=True)
                .filter(
                    saga=self.definition.name,
                    status__in=[Status.RUNNING, Status.COMPENSATING],
                    deadline_at__lte=now or self._now(),
                )
                .order_by("deadline_at")[:limit]
            )
            for instance in due:
                self._on_deadline(instance)
                instance.save()
        return len(due)

    # Operator actions (admin).
    def retry_step(self, instance: SagaInstance) -> None:
        """Send the current step's command again now, with a fresh deadline and resends."""
        self._send_current(instance, "retried")
        instance.save()

    def compensate(self, instance: SagaInstance, reason: str) -> None:
        if instance.status == Status.RUNNING:
            self._begin_compensation(instance, reason, include_current=True)
            instance.save()

    def resolve(self, instance: SagaInstance, note: str) -> None:
        """Mark a stuck instance compensated by hand, after the operator fixed things."""
        self._log(instance, "resolved", detail=note)
        instance.status, instance.deadline_at, instance.reason = Status.COMPENSATED, None, note
        instance.save()

    def _start(self, reply: Reply) -> None:
        instance = SagaInstance(
            id=uuid.uuid4(),
            saga=self.definition.name,
            key=self.definition.key_of(reply),
            data=self.definition.initial_data(reply),
        )
        try:
            with transaction.atomic():
                instance.save(force_insert=True)
        except IntegrityError:
            return  # started already: a duplicate of the starting event
        self._log(instance, "started", reply.id)
        self._send_current(instance, "command_sent")
        instance.save()

    def _on_reply(self, instance: SagaInstance, reply: Reply) -> None:
        step = self.definition.steps[instance.step]
        running = instance.status == Status.RUNNING
        compensating = instance.status == Status.COMPENSATING
        if running and reply.type in step.succeeded_on:
            self._log(instance, "succeeded", reply.id, step=step.name)
            if step.keep is not None:
                instance.data = {**instance.data, **step.keep(reply)}
            self._advance(instance)
        elif running and reply.type in step.failed_on:
            reason = str(reply.data.get("reason") or f"{step.name} failed")
            self._log(instance, "failed", reply.id, reason, step=step.name)
            self._begin_compensation(instance, reason, include_current=False)
        elif reply.type in self.definition.aborted_by and instance.status in ABORTABLE:
            reason = str(reply.data.get("reason") or reply.type)
            self._log(instance, "aborted", reply.id, reason, step=step.name)
            self._begin_compensation(instance, reason, include_current=True)
        elif compensating and reply.type in step.compensated_on:
            self._log(instance, "compensated", reply.id, step=step.name)
            self._next_compensation(instance)
        else:
            self._log(instance, "ignored", reply.id, f"{reply.type} while {instance.status}")

    def _advance(self, instance: SagaInstance) -> None:
        instance.step += 1
        if instance.step == len(self.definition.steps):
            instance.step -= 1
            instance.status, instance.deadline_at = Status.COMPLETED, None
            self._log(instance, "completed")
        else:
            self._send_current(instance, "command_sent")

    def _send_current(self, instance: SagaInstance, kind: str) -> None:
        step = self.definition.steps[instance.step]
        compensating = instance.status == Status.COMPENSATING
        build = step.compensation if compensating else step.command
        assert build is not None
        action = "compensate" if compensating else "do"
        command = build(instance.data, command_id(instance, step.name, action))
        self._send(command)
        awaited = step.compensated_on if compensating else step.succeeded_on
        instance.deadline_at = self._now() + step.deadline if awaited else None
        instance.resends = 0 if kind != "resent" else instance.resends
        self._log(instance, kind, str(command_id(instance, step.name, action)), step=step.name)

    def _begin_compensation(
        self, instance: SagaInstance, reason: str, include_current: bool
    ) -> None:
        last = instance.step + (1 if include_current else 0)
        undo = [i for i in reversed(range(last)) if self.definition.steps[i].compensation]
        instance.status, instance.reason = Status.COMPENSATING, reason
        instance.data = {**instance.data, "_undo": undo}
        self._next_compensation(instance)

    def _next_compensation(self, instance: SagaInstance) -> None:
        undo: list[int] = list(instance.data.get("_undo", []))
        while undo:
            instance.step = undo.pop(0)
            instance.data = {**instance.data, "_undo": undo}
            self._send_current(instance, "compensation_sent")
            if instance.deadline_at is not None:
                return  # wait for this compensation's reply
        instance.status, instance.deadline_at = Status.COMPENSATED, None
        if self.definition.on_compensated is not None:
            finish = command_id(instance, "saga", "compensated")
            self._send(self.definition.on_compensated(instance.data, instance.reason, finish))
        self._log(instance, "saga_compensated", detail=instance.reason)

    def _on_deadline(self, instance: SagaInstance) -> None:
        step = self.definition.steps[instance.step]
        if instance.resends < step.max_resends:
            instance.resends += 1
            self._send_current(instance, "resent")
        elif instance.status == Status.RUNNING:
            reason = f"{step.name} did not answer in time"
            self._log(instance, "timed_out", detail=reason, step=step.name)
            self._begin_compensation(instance, reason, include_current=True)
        else:
            instance.status, instance.deadline_at = Status.STUCK, None
            instance.reason = f"compensating {step.name} never confirmed; {instance.reason}"
            self._log(instance, "stuck", detail=instance.reason, step=step.name)

    def _log(
        self,
        instance: SagaInstance,
        kind: str,
        message_id: str = "",
        detail: str = "",
        step: str = "",
    ) -> None:
        SagaStepEntry.objects.create(
            instance=instance, step=step or "saga", kind=kind, message_id=message_id, detail=detail
        )


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
