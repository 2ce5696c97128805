"""How a saga instance moves on: the decisions of the saga engine, kept apart from I/O.

A `SagaProgress` is opened for one unit of work (a batch of replies, a sweep of due
deadlines, an operator's action). It changes instances in memory and collects what that
unit must write: the instances it touched, the history entries it appended and the
commands to send, each with the message context it was decided in. `SagaManager` loads
the instances before and writes everything together after, so a batch of replies costs a
few statements rather than a few per reply.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from platform_core.messages import MessageContext, ensure_context
from platform_core.models import SagaInstance, SagaStepEntry

if TYPE_CHECKING:
    from platform_core.sagas import Reply, SagaDefinition

Status = SagaInstance.Status
# A completed saga can still be aborted (an order cancelled after confirmation, before it
# shipped): everything it did is then undone.
ABORTABLE = (Status.RUNNING, Status.COMPLETED)


def command_id(instance: SagaInstance, step: str, action: str) -> uuid.UUID:
    """The id of a command the saga sends: the same for a re-sent command."""
    return uuid.uuid5(instance.id, f"{step}:{action}")


@dataclass(frozen=True)
class Outgoing:
    command: Any
    context: MessageContext


@dataclass
class SagaProgress:
    definition: SagaDefinition
    now: Callable[[], datetime]
    touched: dict[uuid.UUID, SagaInstance] = field(default_factory=dict)
    created: set[uuid.UUID] = field(default_factory=set)
    history: list[SagaStepEntry] = field(default_factory=list)
    commands: list[Outgoing] = field(default_factory=list)

    def start(self, key: str, reply: Reply) -> SagaInstance:
        instance = SagaInstance(
            id=uuid.uuid4(),
            saga=self.definition.name,
            key=key,
            data=self.definition.initial_data(reply),
        )
        self.created.add(instance.id)
        self.log(instance, "started", reply.id)
        self.send_current(instance, "command_sent")
        return instance

    def on_reply(self, instance: SagaInstance, reply: Reply) -> None:
        step = self.definition.steps[instance.step]
        running = instance.status == Status.RUNNING
        compensating = instance.status == Status.COMPENSATING
        if running and reply.type in step.succeeded_on:
            self.log(instance, "succeeded", reply.id, step=step.name)
            if step.keep is not None:
                instance.data = {**instance.data, **step.keep(reply)}
            self._advance(instance)
        elif running and reply.type in step.failed_on:
            reason = str(reply.data.get("reason") or f"{step.name} failed")
            self.log(instance, "failed", reply.id, reason, step=step.name)
            self.begin_compensation(instance, reason, include_current=False)
        elif reply.type in self.definition.aborted_by and instance.status in ABORTABLE:
            reason = str(reply.data.get("reason") or reply.type)
            self.log(instance, "aborted", reply.id, reason, step=step.name)
            self.begin_compensation(instance, reason, include_current=True)
        elif compensating and reply.type in step.compensated_on:
            self.log(instance, "compensated", reply.id, step=step.name)
            self._next_compensation(instance)
        else:
            self.log(instance, "ignored", reply.id, f"{reply.type} while {instance.status}")

    def on_deadline(self, instance: SagaInstance) -> None:
        step = self.definition.steps[instance.step]
        if instance.resends < step.max_resends:
            instance.resends += 1
            self.send_current(instance, "resent")
        elif instance.status == Status.RUNNING:
            reason = f"{step.name} did not answer in time"
            self.log(instance, "timed_out", detail=reason, step=step.name)
            self.begin_compensation(instance, reason, include_current=True)
        else:
            instance.status, instance.deadline_at = Status.STUCK, None
            instance.reason = f"compensating {step.name} never confirmed; {instance.reason}"
            self.log(instance, "stuck", detail=instance.reason, step=step.name)

    def send_current(self, instance: SagaInstance, kind: str) -> None:
        """Send the current step's command (or its compensation, while compensating)."""
        step = self.definition.steps[instance.step]
        compensating = instance.status == Status.COMPENSATING
        build = step.compensation if compensating else step.command
        assert build is not None
        sent_id = command_id(instance, step.name, "compensate" if compensating else "do")
        self._send(build(instance.data, sent_id))
        awaited = step.compensated_on if compensating else step.succeeded_on
        instance.deadline_at = self.now() + step.deadline if awaited else None
        instance.resends = 0 if kind != "resent" else instance.resends
        self.log(instance, kind, str(sent_id), step=step.name)

    def begin_compensation(
        self, instance: SagaInstance, reason: str, include_current: bool
    ) -> None:
        last = instance.step + (1 if include_current else 0)
        undo = [i for i in reversed(range(last)) if self.definition.steps[i].compensation]
        instance.status, instance.reason = Status.COMPENSATING, reason
        instance.data = {**instance.data, "_undo": undo}
        self._next_compensation(instance)

    def resolve(self, instance: SagaInstance, note: str) -> None:
        self.log(instance, "resolved", detail=note)
        instance.status, instance.deadline_at, instance.reason = Status.COMPENSATED, None, note

    def log(
        self,
        instance: SagaInstance,
        kind: str,
        message_id: str = "",
        detail: str = "",
        step: str = "",
    ) -> None:
        """Append to the instance's history (and mark the instance as changed)."""
        self.touched[instance.id] = instance
        self.history.append(
            SagaStepEntry(
                instance=instance,
                step=step or "saga",
                kind=kind,
                message_id=message_id,
                detail=detail,
            )
        )

    def _advance(self, instance: SagaInstance) -> None:
        instance.step += 1
        if instance.step == len(self.definition.steps):
            instance.step -= 1
            instance.status, instance.deadline_at = Status.COMPLETED, None
            self.log(instance, "completed")
        else:
            self.send_current(instance, "command_sent")

    def _next_compensation(self, instance: SagaInstance) -> None:
        undo: list[int] = list(instance.data.get("_undo", []))
        while undo:
            instance.step = undo.pop(0)
            instance.data = {**instance.data, "_undo": undo}
            self.send_current(instance, "compensation_sent")
            if instance.deadline_at is not None:
                return  # wait for this compensation's reply
        instance.status, instance.deadline_at = Status.COMPENSATED, None
        if self.definition.on_compensated is not None:
            finish = command_id(instance, "saga", "compensated")
            self._send(self.definition.on_compensated(instance.data, instance.reason, finish))
        self.log(instance, "saga_compensated", detail=instance.reason)

    def _send(self, command: Any) -> None:
        # The context is taken now: a batch sends its commands after every reply in it
        # was handled, and each command belongs to the reply that caused it.
        self.commands.append(Outgoing(command, ensure_context()))
