"""The saga engine with a toy reserve -> pay -> confirm saga and a controllable clock."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import transaction

from platform_core.messages import MessageContext, current_context, message_context
from platform_core.messaging import Envelope
from platform_core.models import SagaInstance, SagaStepEntry
from platform_core.sagas import SagaDefinition, SagaManager, Step

pytestmark = pytest.mark.django_db
Status = SagaInstance.Status


@dataclass(frozen=True)
class Cmd:
    name: str
    order: str
    command_id: uuid.UUID
    reason: str = ""


def _cmd(name: str):
    return lambda data, command_id: Cmd(name, data["order"], command_id)


TOY = SagaDefinition(
    name="toy",
    started_by="t.placed",
    key_of=lambda reply: reply.data["order"],
    initial_data=lambda reply: {"order": reply.data["order"]},
    steps=(
        Step(
            name="reserve",
            command=_cmd("reserve"),
            succeeded_on=frozenset({"t.reserved"}),
            failed_on=frozenset({"t.reserve-failed"}),
            compensation=_cmd("release"),
            compensated_on=frozenset({"t.released"}),
        ),
        Step(
            name="pay",
            command=_cmd("pay"),
            succeeded_on=frozenset({"t.paid"}),
            failed_on=frozenset({"t.declined"}),
            compensation=_cmd("refund"),
            compensated_on=frozenset({"t.refunded"}),
            keep=lambda reply: {"charge": reply.data["charge"]},
        ),
        Step(name="confirm", command=_cmd("confirm"), succeeded_on=frozenset({"t.confirmed"})),
    ),
    aborted_by=frozenset({"t.cancelled"}),
    on_compensated=lambda data, reason, command_id: Cmd(
        "cancel", data["order"], command_id, reason
    ),
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sent() -> list[Cmd]:
    return []


@pytest.fixture
def saga(sent, clock) -> SagaManager:
    return SagaManager(TOY, send=sent.append, now=clock)


def reply(event_type: str, order: str = "o-1", **data: Any) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type=event_type,
        source="/tests",
        time=datetime.now(UTC),
        data=json.dumps({"order": order, **data}).encode(),
        correlation_id=f"corr-{order}",
    )


def deliver(saga: SagaManager, event_type: str, order: str = "o-1", **data: Any) -> None:
    with transaction.atomic():
        saga.handle(reply(event_type, order, **data))


def names(sent: list[Cmd]) -> list[str]:
    return [command.name for command in sent]


def instance(order: str = "o-1") -> SagaInstance:
    return SagaInstance.objects.get(saga="toy", key=order)


def test_a_saga_sends_each_step_after_the_previous_one_succeeded(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.paid", charge="ch_1")
    deliver(saga, "t.confirmed")
    assert names(sent) == ["reserve", "pay", "confirm"]
    assert instance().status == Status.COMPLETED
    assert instance().data["charge"] == "ch_1"
    kinds = list(SagaStepEntry.objects.values_list("kind", flat=True))
    assert (kinds[0], kinds[-1]) == ("started", "completed")


def test_a_failed_step_compensates_the_completed_ones_in_reverse(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.declined", reason="card declined")
    assert names(sent) == ["reserve", "pay", "release"]
    assert instance().status == Status.COMPENSATING
    deliver(saga, "t.released")
    assert names(sent)[-1] == "cancel"
    assert sent[-1].reason == "card declined"
    assert instance().status == Status.COMPENSATED


def test_duplicate_and_out_of_order_replies_are_harmless(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.placed")
    deliver(saga, "t.paid", charge="early")  # before its step: ignored
    deliver(saga, "t.reserved")
    deliver(saga, "t.reserved")  # a duplicate: ignored
    assert names(sent) == ["reserve", "pay"]
    assert SagaInstance.objects.count() == 1
    assert instance().step == 1
    assert SagaStepEntry.objects.filter(kind="ignored").count() == 2


def test_a_silent_step_is_re_sent_with_the_same_id_then_compensated(saga, sent, clock):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    for _ in range(2):
        clock.advance(31)
        assert saga.fire_deadlines() == 1
    assert names(sent) == ["reserve", "pay", "pay", "pay"]
    assert len({c.command_id for c in sent[1:]}) == 1, "a re-sent command keeps its id"

    clock.advance(31)
    saga.fire_deadlines()
    assert names(sent)[-1] == "refund"  # the silent step may have happened late: undo it too
    assert instance().reason == "pay did not answer in time"
    deliver(saga, "t.refunded")
    deliver(saga, "t.released")
    assert names(sent)[-2:] == ["release", "cancel"]
    assert instance().status == Status.COMPENSATED


def test_nothing_happens_before_a_deadline(saga, sent, clock):
    deliver(saga, "t.placed")
    clock.advance(29)
    assert saga.fire_deadlines() == 0
    assert names(sent) == ["reserve"]


def test_a_compensation_that_never_answers_leaves_the_saga_visibly_stuck(saga, sent, clock):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.declined")
    for _ in range(3):
        clock.advance(31)
        saga.fire_deadlines()
    stuck = instance()
    assert stuck.status == Status.STUCK
    assert "compensating reserve never confirmed" in stuck.reason
    assert names(sent) == ["reserve", "pay", "release", "release", "release"]


def test_an_aborting_event_compensates_what_was_done(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.cancelled", reason="customer changed their mind")
    deliver(saga, "t.refunded")
    deliver(saga, "t.released")
    assert names(sent) == ["reserve", "pay", "refund", "release", "cancel"]
    assert instance().status == Status.COMPENSATED
    assert instance().reason == "customer changed their mind"


def test_replies_after_the_end_are_ignored(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserve-failed", reason="out of stock")
    assert instance().status == Status.COMPENSATED  # nothing was done, nothing to undo
    deliver(saga, "t.reserved")
    assert names(sent) == ["reserve", "cancel"]
    assert sent[-1].reason == "out of stock"


def test_an_operator_can_retry_a_step_or_compensate_a_running_saga(saga, sent):
    deliver(saga, "t.placed")
    saga.retry_step(instance())
    assert names(sent) == ["reserve", "reserve"]
    saga.compensate(instance(), "operator gave up")
    assert names(sent)[-1] == "release"
    assert instance().status == Status.COMPENSATING


def test_a_saga_listens_to_every_type_its_steps_name():
    assert TOY.event_types >= {"t.placed", "t.paid", "t.refunded", "t.cancelled", "t.confirmed"}


def test_aborting_a_completed_saga_undoes_every_step(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.paid", charge="ch_1")
    deliver(saga, "t.confirmed")
    deliver(saga, "t.cancelled", reason="changed my mind after confirmation")
    deliver(saga, "t.refunded")
    deliver(saga, "t.released")
    assert names(sent) == ["reserve", "pay", "confirm", "refund", "release", "cancel"]
    assert instance().status == Status.COMPENSATED


# Replies for three orders, interleaved as a consumer's batch would hold them: starts and
# their replies together, a duplicate start, a reply before its step, a decline, an abort.
INTERLEAVED = [
    ("t.placed", "a"), ("t.placed", "b"), ("t.reserved", "a"), ("t.placed", "c"),
    ("t.placed", "a"), ("t.paid", "b"), ("t.reserved", "b"), ("t.reserved", "c"),
    ("t.paid", "a"), ("t.declined", "c"), ("t.confirmed", "a"), ("t.cancelled", "b"),
    ("t.released", "c"), ("t.refunded", "b"), ("t.unknown-order", "z"),
]  # fmt: skip


def _outcome(prefix: str) -> dict[str, tuple[Any, ...]]:
    return {
        i.key.removeprefix(prefix): (
            i.status,
            i.step,
            i.reason,
            [e.kind for e in i.history.order_by("id")],
        )
        for i in SagaInstance.objects.filter(key__startswith=prefix)
    }


def test_a_batch_of_replies_ends_where_one_at_a_time_would(clock):
    sent: list[tuple[str, str, str]] = []

    def send(command: Cmd) -> None:
        context = current_context()
        assert context is not None
        sent.append((command.name, command.order, context.correlation_id))

    saga = SagaManager(TOY, send=send, now=clock)
    envelopes = {
        prefix: [reply(t, prefix + order, charge="ch") for t, order in INTERLEAVED]
        for prefix in ("one-", "all-")
    }
    for envelope in envelopes["one-"]:
        with transaction.atomic(), message_context(context_of(envelope)):
            saga.handle(envelope)
    one_at_a_time = list(sent)
    sent.clear()
    with transaction.atomic(), saga.batch(envelopes["all-"]) as handle:
        for envelope in envelopes["all-"]:
            with message_context(context_of(envelope)):
                handle(envelope)

    assert _outcome("all-") == _outcome("one-")
    assert _outcome("all-")["a"][0] == Status.COMPLETED
    assert _outcome("all-")["b"][0] == Status.COMPENSATING
    assert _outcome("all-")["c"][0] == Status.COMPENSATED
    assert [tuple(field.replace("all-", "one-") for field in s) for s in sent] == one_at_a_time, (
        "the same commands, in the same order, each with the context of its own reply"
    )


def context_of(envelope: Envelope) -> MessageContext:
    assert envelope.correlation_id is not None
    return MessageContext(correlation_id=envelope.correlation_id, causation_id=envelope.id)
