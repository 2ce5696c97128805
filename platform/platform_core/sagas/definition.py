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

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec

from platform_core.messaging.envelope import Envelope

Data = dict[str, Any]
# (saga data, command id) -> the command to send
CommandBuilder = Callable[[Mapping[str, Any], uuid.UUID], Any]


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
    # Retired versions of the starting event, still started from: the messages sent
    # before an upgrade that replaced it.
    also_started_by: frozenset[str] = frozenset()
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

    def starts(self, event_type: str) -> bool:
        """Whether an event of `event_type` starts an instance."""
        return event_type == self.started_by or event_type in self.also_started_by

    @property
    def event_types(self) -> frozenset[str]:
        """Every event type the saga listens to."""
        types = {self.started_by, *self.also_started_by, *self.aborted_by}
        for step in self.steps:
            types |= (
                step.succeeded_on
                | step.failed_on
                | step.compensated_on
                | step.compensation_failed_on
                | step.too_late_on
            )
        return frozenset(types)
