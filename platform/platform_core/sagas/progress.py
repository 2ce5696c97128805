"""How a saga instance moves on: the decisions of the saga engine, kept apart from I/O.

A `SagaProgress` is opened for one unit of work (a batch of replies, a sweep of due
deadlines, an operator's action). It changes instances in memory and collects what that
unit must write: the instances it touched, the history entries it appended and the
commands to send, each with the message context it was decided in. `SagaManager` loads
the instances before and writes everything together after, so a batch of replies costs a
few statements rather than a few per reply.

Bookkeeping kept in an instance's `data`, beside what the steps keep:
- `_done`: the steps whose success reply came;
- `_undo`: the steps still to compensate; `_was`: where the instance stood when
  compensation began (to go on from there if it came too late); `_decided`: whether the
  outcome (`on_compensation`) was sent;
- `_failed`: compensations their participant refused (step name to reason), and
  `_retrying`: the command sent again for each (only its answer clears the refusal);
- `_stuck`: why the instance is flagged;
- `_epoch`: bumped by an operator's retry and by a compensation that came too late (part
  of the command ids, so a command sent again after either is new to its receiver's
  inbox).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from platform_core.eventsourcing.messages import MessageContext, ensure_context
from platform_core.models import SagaInstance, SagaStepEntry
from platform_core.sagas.definition import Reply, SagaDefinition, Step

Status = SagaInstance.Status
# A completed saga can still be aborted (an order cancelled after confirmation, before it
# shipped): everything it did is then undone.
ABORTABLE = (Status.RUNNING, Status.COMPLETED)
LIVE = (Status.RUNNING, Status.COMPENSATING)


def command_id(instance: SagaInstance, step: str, action: str) -> uuid.UUID:
    """The id of a command the saga sends: the same for a re-sent command, a new one
    in each new epoch (after an operator's retry, after a compensation that came too
    late), so that the receiver's inbox does not take it for the earlier one."""
    epoch = instance.data.get("_epoch", 0)
    return uuid.uuid5(instance.id, f"{step}:{action}" + (f":{epoch}" if epoch else ""))


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

    def abort_unstarted(self, key: str, reply: Reply) -> SagaInstance:
        """An instance aborted before its start was seen: compensated, nothing to undo.
        The outcome is sent when the start comes (it carries the data to say it with)."""
        reason = str(reply.data.get("reason") or reply.type)
        instance = SagaInstance(
            id=uuid.uuid4(), saga=self.definition.name, key=key, data={}, reason=reason
        )
        instance.status = Status.COMPENSATED
        self.created.add(instance.id)
        self.log(instance, "aborted", reply.id, f"before it started: {reason}")
        return instance

    def on_reply(self, instance: SagaInstance, reply: Reply) -> None:
        step = self._current(instance)
        status = instance.status
        if self.definition.starts(reply.type) and not instance.data:
            # The start of an instance aborted before it: its data, and the outcome.
            instance.data = self.definition.initial_data(reply)
            self.log(instance, "started", reply.id, "after it was aborted: nothing to do")
            self._decide(instance)
        elif status == Status.RUNNING and reply.type in step.succeeded_on:
            self.log(instance, "succeeded", reply.id, step=step.name)
            self._done(instance, step, reply)
            self._advance(instance)
        elif status == Status.RUNNING and reply.type in step.failed_on:
            reason = str(reply.data.get("reason") or f"{step.name} failed")
            self.log(instance, "failed", reply.id, reason, step=step.name)
            self.begin_compensation(instance, reason, include_current=False)
        elif reply.type in self.definition.aborted_by and status in ABORTABLE:
            reason = str(reply.data.get("reason") or reply.type)
            self.log(instance, "aborted", reply.id, reason, step=step.name)
            self.begin_compensation(instance, reason, include_current=True)
        elif status == Status.COMPENSATING and reply.type in step.compensated_on:
            self.log(instance, "compensated", reply.id, step=step.name)
            self._next_compensation(instance)
        elif status == Status.COMPENSATING and reply.type in step.failed_on:
            # The step in doubt had failed: there is nothing to undo, and its participant
            # may never answer the compensation (a stock release for a refused reservation).
            self.log(instance, "compensated", reply.id, f"{reply.type}: nothing to undo", step.name)
            self._next_compensation(instance)
        elif status == Status.COMPENSATING and reply.type in step.compensation_failed_on:
            self._compensation_refused(instance, step, reply)
        elif status == Status.COMPENSATING and reply.type in step.too_late_on:
            self._resume(instance, step, reply)
        else:
            self._on_other_reply(instance, reply)

    def on_deadline(self, instance: SagaInstance) -> None:
        step = self._current(instance)
        running = instance.status == Status.RUNNING
        if running and step.may_give_up and self.now() >= self._give_up_at(instance, step):
            reason = f"{step.name} did not answer in time"
            self.log(instance, "timed_out", detail=reason, step=step.name)
            self.begin_compensation(instance, reason, include_current=True)
            return
        instance.resends += 1
        self.send_current(instance, "resent")
        if instance.resends >= step.stuck_after:
            doing = "compensating " if not running else ""
            self._flag(instance, f"{doing}{step.name} has not answered {instance.resends} re-sends")

    def send_current(self, instance: SagaInstance, kind: str) -> None:
        """Send the current step's command (or its compensation, while compensating) and
        set the deadline of its reply."""
        step = self._current(instance)
        compensating = instance.status == Status.COMPENSATING
        build = step.compensation if compensating else step.command
        assert build is not None
        sent_id = command_id(instance, step.name, "compensate" if compensating else "do")
        self._send(build(instance.data, sent_id))
        if kind != "resent":
            instance.resends, instance.step_started_at = 0, self.now()
            self._unflag(instance)
        self.log(instance, kind, str(sent_id), step=step.name)
        awaited = step.compensated_on if compensating else step.succeeded_on
        if not awaited:
            instance.deadline_at = None
            return
        instance.deadline_at = self.now() + step.wait(instance.resends)
        if not compensating and step.may_give_up:
            instance.deadline_at = min(instance.deadline_at, self._give_up_at(instance, step))

    def begin_compensation(
        self, instance: SagaInstance, reason: str, include_current: bool
    ) -> None:
        last = instance.step + (1 if include_current else 0)
        undo = [i for i in reversed(range(last)) if self.definition.steps[i].compensation]
        was = {"status": instance.status, "step": instance.step}
        instance.status, instance.reason = Status.COMPENSATING, reason
        instance.data = {**instance.data, "_undo": undo, "_was": was}
        self._next_compensation(instance)

    # Operator actions: each answers whether the instance was in a state for it.
    def retry(self, instance: SagaInstance) -> bool:
        failed = dict(instance.data.get("_failed", {}))
        if instance.status not in LIVE and not failed:
            return False
        self._new_epoch(instance)
        if instance.status in LIVE:
            self.send_current(instance, "retried")
        for name in failed:
            step = self._step_named(name)
            assert step.compensation is not None
            sent_id = command_id(instance, step.name, "compensate")
            self._send_retry(instance, step, step.compensation(instance.data, sent_id), sent_id)
            self.log(instance, "retried", str(sent_id), step=step.name)
        return True

    def give_up(self, instance: SagaInstance, reason: str) -> bool:
        if instance.status != Status.RUNNING:
            return False
        self.log(instance, "given_up", detail=reason, step=self._current(instance).name)
        self.begin_compensation(instance, reason, include_current=True)
        return True

    def resolve(self, instance: SagaInstance, note: str) -> bool:
        """A person settled by hand the compensation the instance is stuck on (and any it
        had refused): the other compensations go on. Not for a running instance (retry
        or compensate it), nor for the pivot's compensation: only its participant can say
        whether it is still possible (a parcel may leave at any moment)."""
        compensating = instance.status == Status.COMPENSATING
        at_pivot = compensating and bool(self._current(instance).too_late_on)
        if not instance.stuck or instance.status == Status.RUNNING or at_pivot:
            return False
        self.log(instance, "resolved", detail=note, step=self._current(instance).name)
        data = {k: v for k, v in instance.data.items() if k not in ("_failed", "_retrying")}
        instance.data = data
        if compensating:
            self._next_compensation(instance)
        self._unflag(instance)
        return True

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

    def _on_other_reply(self, instance: SagaInstance, reply: Reply) -> None:
        """A reply that does not answer what the instance waits for: a compensation
        retried by an operator answering, a late success to undo, or nothing new."""
        failed = dict(instance.data.get("_failed", {}))
        answered = self._step_answered(reply.type, lambda s: s.compensated_on)
        refused = self._step_answered(reply.type, lambda s: s.compensation_failed_on)
        late = self._step_answered(reply.type, lambda s: s.succeeded_on)
        if late is not None:
            self._done(instance, late, reply)
        if refused is not None and instance.status in (Status.COMPENSATING, Status.COMPENSATED):
            # The compensation of a step already passed (a late effect's, say) refused.
            self._record_refusal(instance, refused, reply)
        elif answered is not None and self._answers_a_retry(instance, answered, reply):
            self.log(instance, "compensated", reply.id, step=answered.name)
            instance.data = {
                **instance.data,
                "_failed": {k: v for k, v in failed.items() if k != answered.name},
            }
            self._unflag(instance)
        elif late is not None and self._already_undone(instance, late):
            # It happened after its compensation: undo it again (under an id of this
            # reply's, since the first compensation's id was used up).
            assert late.compensation is not None
            sent_id = uuid.uuid5(instance.id, f"{late.name}:compensate:{reply.id}")
            self._send_retry(instance, late, late.compensation(instance.data, sent_id), sent_id)
            self.log(instance, "late_effect_undone", str(sent_id), reply.type, step=late.name)
        else:
            self.log(instance, "ignored", reply.id, f"{reply.type} while {instance.status}")

    def _send_retry(
        self, instance: SagaInstance, step: Step, command: Any, sent_id: uuid.UUID
    ) -> None:
        """Send a compensation again; if it was refused before, only this command's own
        answer clears the refusal (an older answer, redelivered late, must not)."""
        self._send(command)
        if step.name in instance.data.get("_failed", {}):
            retrying = {**instance.data.get("_retrying", {}), step.name: str(sent_id)}
            instance.data = {**instance.data, "_retrying": retrying}

    def _answers_a_retry(self, instance: SagaInstance, step: Step, reply: Reply) -> bool:
        retrying = instance.data.get("_retrying", {})
        return step.name in instance.data.get("_failed", {}) and (
            reply.caused_by is not None and reply.caused_by == retrying.get(step.name)
        )

    def _already_undone(self, instance: SagaInstance, step: Step) -> bool:
        """Whether `step`'s compensation has been sent and answered (or passed)."""
        if step.compensation is None:
            return False
        index = self.definition.steps.index(step)
        if instance.status == Status.COMPENSATED:
            return True
        return instance.status == Status.COMPENSATING and index > instance.step

    def _compensation_refused(self, instance: SagaInstance, step: Step, reply: Reply) -> None:
        """The awaited compensation was refused: recorded, flagged, and passed."""
        self._record_refusal(instance, step, reply)
        self._next_compensation(instance)

    def _record_refusal(self, instance: SagaInstance, step: Step, reply: Reply) -> None:
        reason = str(reply.data.get("reason") or f"{step.name} could not be compensated")
        self.log(instance, "compensation_failed", reply.id, reason, step=step.name)
        failed = {**instance.data.get("_failed", {}), step.name: reason}
        instance.data = {**instance.data, "_failed": failed}
        self._flag(instance, f"compensating {step.name} failed: {reason}")

    def _advance(self, instance: SagaInstance) -> None:
        """On to the next step whose success has not been heard of already (a reply
        may come before its step, when the participant acted on its own)."""
        done = set(instance.data.get("_done", []))
        instance.step += 1
        steps = self.definition.steps
        while instance.step < len(steps) and steps[instance.step].name in done:
            self.log(
                instance, "succeeded", detail="before its turn", step=steps[instance.step].name
            )
            instance.step += 1
        if instance.step == len(steps):
            instance.step -= 1
            instance.status, instance.deadline_at = Status.COMPLETED, None
            self._unflag(instance)
            self.log(instance, "completed")
        else:
            self.send_current(instance, "command_sent")

    def _resume(self, instance: SagaInstance, pivot: Step, reply: Reply) -> None:
        """The pivot's compensation came too late (its effect is final): no outcome was
        said yet, nothing before it was undone. Go on from where the saga was."""
        why = str(reply.data.get("reason") or f"{pivot.name} can no longer be undone")
        self.log(instance, "too_late", reply.id, why, step=pivot.name)
        was = instance.data.get("_was", {})
        done = set(instance.data.get("_done", []))
        instance.data = {k: v for k, v in instance.data.items() if k not in ("_undo", "_was")}
        self._new_epoch(instance)  # a later compensation must not reuse this one's ids
        if self.definition.on_resumed is not None:
            resumed = command_id(instance, "saga", "resumed")
            self._send(self.definition.on_resumed(instance.data, why, resumed))
        steps = self.definition.steps
        rest = [i for i in range(steps.index(pivot) + 1, len(steps)) if steps[i].name not in done]
        instance.reason = ""
        if was.get("status") == Status.COMPLETED or not rest:
            instance.status, instance.step, instance.deadline_at = (
                Status.COMPLETED,
                len(steps) - 1,
                None,
            )
            self._unflag(instance)
            self.log(instance, "completed")
        else:
            instance.status, instance.step = Status.RUNNING, rest[0]
            self.send_current(instance, "command_sent")

    def _next_compensation(self, instance: SagaInstance) -> None:
        undo: list[int] = list(instance.data.get("_undo", []))
        if not any(self.definition.steps[i].too_late_on for i in undo):
            self._decide(instance)  # nothing left can turn out too late: say the outcome
        while undo:
            instance.step = undo.pop(0)
            instance.data = {**instance.data, "_undo": undo}
            self.send_current(instance, "compensation_sent")
            if instance.deadline_at is not None:
                return  # wait for this compensation's reply
        instance.status, instance.deadline_at = Status.COMPENSATED, None
        self._unflag(instance)
        self.log(instance, "saga_compensated", detail=instance.reason)

    def _decide(self, instance: SagaInstance) -> None:
        """Send the outcome of a compensation (`on_compensation`), once."""
        if instance.data.get("_decided") or self.definition.on_compensation is None:
            return
        instance.data = {**instance.data, "_decided": True}
        decided = command_id(instance, "saga", "compensated")
        self._send(self.definition.on_compensation(instance.data, instance.reason, decided))

    def _new_epoch(self, instance: SagaInstance) -> None:
        instance.data = {**instance.data, "_epoch": instance.data.get("_epoch", 0) + 1}

    def _done(self, instance: SagaInstance, step: Step, reply: Reply) -> None:
        """Note that `step` happened (its success reply came), keeping what it asks to."""
        done = list(instance.data.get("_done", []))
        if step.name not in done:
            done.append(step.name)
        kept = step.keep(reply) if step.keep is not None else {}
        instance.data = {**instance.data, **kept, "_done": done}

    def _flag(self, instance: SagaInstance, why: str) -> None:
        """Mark the instance as needing a person (once: later reasons are in the log)."""
        if not instance.stuck:
            instance.stuck_since = self.now()
            instance.data = {**instance.data, "_stuck": why}
            self.log(instance, "stuck", detail=why, step=self._current(instance).name)

    def _unflag(self, instance: SagaInstance) -> None:
        """The instance moved on: no longer stuck, unless a refused compensation waits."""
        if instance.stuck and not instance.data.get("_failed"):
            instance.stuck_since = None
            instance.data = {k: v for k, v in instance.data.items() if k != "_stuck"}

    def _give_up_at(self, instance: SagaInstance, step: Step) -> datetime:
        return (instance.step_started_at or self.now()) + step.give_up_after

    def _current(self, instance: SagaInstance) -> Step:
        return self.definition.steps[instance.step]

    def _step_named(self, name: str) -> Step:
        return next(step for step in self.definition.steps if step.name == name)

    def _step_answered(self, reply_type: str, by: Callable[[Step], frozenset[str]]) -> Step | None:
        return next((step for step in self.definition.steps if reply_type in by(step)), None)

    def _send(self, command: Any) -> None:
        # The context is taken now: a batch sends its commands after every reply in it
        # was handled, and each command belongs to the reply that caused it.
        self.commands.append(Outgoing(command, ensure_context()))
