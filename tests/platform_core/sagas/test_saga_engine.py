"""The saga engine with a toy reserve -> pay -> confirm saga and a controllable clock."""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import transaction

from platform_core.eventsourcing.messages import MessageContext, current_context, message_context
from platform_core.messaging.envelope import Envelope
from platform_core.models import SagaInstance, SagaStepEntry
from platform_core.sagas.definition import SagaDefinition, Step
from platform_core.sagas.manager import SagaManager

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


# Replies awaited 30 s, then 60, 120, 120...; flagged stuck after 2 re-sends; a step that
# can be undone is given up after 300 s.
TIMING: dict[str, Any] = {
    "deadline": timedelta(seconds=30),
    "max_wait": timedelta(seconds=120),
    "stuck_after": 2,
    "give_up_after": timedelta(seconds=300),
}

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
            **TIMING,
        ),
        Step(
            name="pay",
            command=_cmd("pay"),
            succeeded_on=frozenset({"t.paid"}),
            failed_on=frozenset({"t.declined"}),
            compensation=_cmd("refund"),
            compensated_on=frozenset({"t.refunded"}),
            compensation_failed_on=frozenset({"t.refund-failed"}),
            keep=lambda reply: {"charge": reply.data["charge"]},
            **TIMING,
        ),
        Step(
            name="confirm",
            command=_cmd("confirm"),
            succeeded_on=frozenset({"t.confirmed"}),
            **TIMING,
        ),
    ),
    aborted_by=frozenset({"t.cancelled"}),
    on_compensation=lambda data, reason, command_id: Cmd(
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


def reply(
    event_type: str, order: str = "o-1", caused_by: uuid.UUID | None = None, **data: Any
) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type=event_type,
        source="/tests",
        time=datetime.now(UTC),
        data=json.dumps({"order": order, **data}).encode(),
        correlation_id=f"corr-{order}",
        causation_id=str(caused_by) if caused_by else None,
    )


def deliver(
    saga: SagaManager,
    event_type: str,
    order: str = "o-1",
    caused_by: uuid.UUID | None = None,
    **data: Any,
) -> None:
    """A reply as the consumer hands it over; `caused_by`: the command it answers."""
    with transaction.atomic():
        saga.handle(reply(event_type, order, caused_by, **data))


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


def test_a_failed_step_cancels_then_compensates_the_completed_ones_in_reverse(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.declined", reason="card declined")
    assert names(sent) == ["reserve", "pay", "cancel", "release"]
    assert sent[2].reason == "card declined"
    assert instance().status == Status.COMPENSATING
    deliver(saga, "t.released")
    assert instance().status == Status.COMPENSATED
    assert names(sent) == ["reserve", "pay", "cancel", "release"]


def test_a_retired_version_of_the_start_still_starts_an_instance_once(sent, clock):
    upgraded = dataclasses.replace(
        TOY, started_by="t.placed.v2", also_started_by=frozenset({"t.placed"})
    )
    saga = SagaManager(upgraded, send=sent.append, now=clock)

    deliver(saga, "t.placed")
    deliver(saga, "t.placed.v2")  # the same order's start, in both versions
    deliver(saga, "t.placed.v2", order="o-2")

    assert names(sent) == ["reserve", "reserve"]
    assert sorted(SagaInstance.objects.values_list("key", flat=True)) == ["o-1", "o-2"]
    assert "t.placed" in upgraded.event_types


def test_duplicates_are_ignored_and_a_success_before_its_step_counts(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.placed")
    deliver(saga, "t.paid", charge="early")  # the participant acted before its turn
    deliver(saga, "t.reserved")
    deliver(saga, "t.reserved")  # a duplicate: ignored
    assert names(sent) == ["reserve", "confirm"], "pay is not sent: it happened"
    assert SagaInstance.objects.count() == 1
    assert instance().step == 2
    assert instance().data["charge"] == "early"
    assert SagaStepEntry.objects.filter(kind="ignored").count() == 3


def test_a_silent_step_is_re_sent_with_backoff_and_the_same_id(saga, sent, clock):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    waits = []
    for _ in range(3):
        due = instance().deadline_at
        waits.append((due - clock.now).total_seconds())
        clock.now = due
        assert saga.fire_deadlines() == 1
    assert waits == [30, 60, 120]
    assert names(sent) == ["reserve", "pay", "pay", "pay", "pay"]
    assert len({c.command_id for c in sent[1:]}) == 1, "a re-sent command keeps its id"
    assert (instance().deadline_at - clock.now).total_seconds() == 90, "capped by give-up"


def test_a_silent_step_that_can_be_undone_is_given_up_and_compensated(saga, sent, clock):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    clock.advance(299)
    saga.fire_deadlines()
    assert instance().status == Status.RUNNING
    clock.advance(1)
    saga.fire_deadlines()
    assert instance().reason == "pay did not answer in time"
    # In doubt (it may have happened): its compensation goes too, after the cancel.
    assert names(sent)[-3:] == ["pay", "cancel", "refund"]
    deliver(saga, "t.refunded")
    deliver(saga, "t.released")
    assert names(sent)[-1] == "release"
    assert instance().status == Status.COMPENSATED


def test_nothing_happens_before_a_deadline(saga, sent, clock):
    deliver(saga, "t.placed")
    clock.advance(29)
    assert saga.fire_deadlines() == 0
    assert names(sent) == ["reserve"]


def test_a_step_that_cannot_be_undone_is_never_given_up(saga, sent, clock):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.paid", charge="ch_1")
    for _ in range(10):
        clock.now = instance().deadline_at
        saga.fire_deadlines()
    assert instance().status == Status.RUNNING
    assert instance().stuck
    assert names(sent)[2:] == ["confirm"] * 11
    deliver(saga, "t.confirmed")  # however late, it completes the saga
    assert instance().status == Status.COMPLETED
    assert not instance().stuck


def test_a_compensation_that_does_not_answer_is_flagged_stuck_and_re_sent(saga, sent, clock):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.declined")
    for _ in range(6):
        clock.now = instance().deadline_at
        saga.fire_deadlines()
    stuck = instance()
    assert stuck.status == Status.COMPENSATING
    assert stuck.stuck_since is not None
    assert stuck.data["_stuck"] == "compensating reserve has not answered 2 re-sends"
    assert names(sent).count("release") == 7
    deliver(saga, "t.released")  # the late answer settles it
    assert instance().status == Status.COMPENSATED
    assert not instance().stuck


def stuck_at_confirm(saga: SagaManager, clock: Clock) -> None:
    """An instance whose confirmation went unanswered three times: flagged stuck."""
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.paid", charge="ch_1")
    for _ in range(3):
        clock.now = instance().deadline_at
        saga.fire_deadlines()
    assert instance().stuck


def test_a_stuck_running_saga_still_honours_a_cancel(saga, sent, clock):
    stuck_at_confirm(saga, clock)
    deliver(saga, "t.cancelled", reason="too slow")
    assert names(sent)[-2:] == ["cancel", "refund"]
    assert instance().status == Status.COMPENSATING
    assert not instance().stuck
    deliver(saga, "t.refunded")
    deliver(saga, "t.released")
    assert instance().status == Status.COMPENSATED


def test_an_aborting_event_compensates_what_was_done(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.cancelled", reason="customer changed their mind")
    deliver(saga, "t.refunded")
    deliver(saga, "t.released")
    assert names(sent) == ["reserve", "pay", "cancel", "refund", "release"]
    assert instance().status == Status.COMPENSATED
    assert instance().reason == "customer changed their mind"


def test_a_late_success_after_its_compensation_is_undone_again(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.cancelled", reason="changed my mind")
    deliver(saga, "t.refunded")  # the refund overtook the charge: nothing to refund yet
    deliver(saga, "t.paid", charge="ch_late")  # then the charge landed
    refunds = [c for c in sent if c.name == "refund"]
    assert len(refunds) == 2
    assert refunds[0].command_id != refunds[1].command_id, "a new command, not a duplicate"
    deliver(saga, "t.released")
    deliver(saga, "t.reserved")  # a duplicate after the end: undone once more, harmlessly
    assert names(sent)[-1] == "release"
    assert instance().status == Status.COMPENSATED
    kinds = list(SagaStepEntry.objects.values_list("kind", flat=True))
    assert kinds.count("late_effect_undone") == 2


def test_a_success_while_its_own_compensation_is_awaited_changes_nothing(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.cancelled", reason="quick change")
    deliver(saga, "t.reserved")  # the release in flight covers it
    assert names(sent) == ["reserve", "cancel", "release"]


def test_replies_after_the_end_are_ignored(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserve-failed", reason="out of stock")
    assert instance().status == Status.COMPENSATED  # nothing was done, nothing to undo
    deliver(saga, "t.declined")
    assert names(sent) == ["reserve", "cancel"]
    assert sent[-1].reason == "out of stock"


def test_a_refused_compensation_is_flagged_and_passed(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.paid", charge="ch_1")
    deliver(saga, "t.cancelled", reason="changed my mind")
    deliver(saga, "t.refund-failed", reason="the charge cannot be refunded")
    assert names(sent)[-1] == "release", "the other compensations go on"
    deliver(saga, "t.released")
    done = instance()
    assert done.status == Status.COMPENSATED
    assert done.stuck, "the money is still charged: a person must look"
    assert done.data["_failed"] == {"pay": "the charge cannot be refunded"}


def test_an_operator_retry_of_a_refused_compensation_sends_a_new_command(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.cancelled", reason="changed my mind")
    deliver(saga, "t.refund-failed", reason="gateway said no")
    deliver(saga, "t.released")
    first_refund = next(c for c in sent if c.name == "refund")
    assert saga.retry_step(instance())
    retried = sent[-1]
    assert retried.name == "refund"
    assert retried.command_id != first_refund.command_id
    deliver(saga, "t.refunded", caused_by=first_refund.command_id)  # an old answer, late
    assert instance().stuck, "only the retried command's answer clears the refusal"
    deliver(saga, "t.refunded", caused_by=retried.command_id)
    assert not instance().stuck
    assert instance().data["_failed"] == {}


def test_an_operator_can_retry_a_step_or_compensate_a_running_saga(saga, sent):
    deliver(saga, "t.placed")
    assert saga.retry_step(instance())
    assert names(sent) == ["reserve", "reserve"]
    assert sent[0].command_id != sent[1].command_id, "a retry is new to the receiver's inbox"
    assert saga.compensate(instance(), "operator gave up")
    assert names(sent)[-2:] == ["cancel", "release"]
    assert instance().status == Status.COMPENSATING
    assert not saga.compensate(instance(), "again"), "already compensating"


def test_an_operator_can_compensate_a_stuck_saga(saga, sent, clock):
    stuck_at_confirm(saga, clock)
    assert saga.compensate(instance(), "operator gave up")
    assert names(sent)[-2:] == ["cancel", "refund"]
    assert instance().status == Status.COMPENSATING


def test_only_a_stuck_compensation_can_be_resolved(saga, sent, clock):
    deliver(saga, "t.placed")
    assert not saga.resolve(instance(), "nothing to resolve")
    deliver(saga, "t.reserved")
    deliver(saga, "t.declined")
    for _ in range(3):
        clock.now = instance().deadline_at
        saga.fire_deadlines()
    assert saga.resolve(instance(), "released by hand")
    assert instance().status == Status.COMPENSATED
    assert not instance().stuck
    assert SagaStepEntry.objects.filter(kind="resolved", detail="released by hand").exists()


def test_a_saga_listens_to_every_type_its_steps_name():
    assert TOY.event_types >= {
        "t.placed",
        "t.paid",
        "t.refunded",
        "t.refund-failed",
        "t.cancelled",
        "t.confirmed",
    }


def test_aborting_a_completed_saga_undoes_every_step(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.paid", charge="ch_1")
    deliver(saga, "t.confirmed")
    deliver(saga, "t.cancelled", reason="changed my mind after confirmation")
    deliver(saga, "t.refunded")
    deliver(saga, "t.released")
    assert names(sent) == ["reserve", "pay", "confirm", "cancel", "refund", "release"]
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


# Found by the model-based test (tests/platform_core/sagas/test_saga_model.py), kept as examples.


def test_a_cancel_seen_before_the_start_is_remembered_and_the_late_start_ignored(saga, sent):
    deliver(saga, "t.cancelled", reason="changed my mind at once")
    deliver(saga, "t.placed")  # its first delivery had failed; it comes back later
    assert names(sent) == ["cancel"], "nothing to undo: the outcome at once"
    assert instance().status == Status.COMPENSATED
    assert instance().reason == "changed my mind at once"


def test_a_step_in_doubt_that_had_failed_needs_no_compensation_answer(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.cancelled", reason="changed my mind")  # reserve in doubt: release it
    deliver(saga, "t.reserve-failed", reason="out of stock")  # it had failed after all
    assert instance().status == Status.COMPENSATED, "the release of nothing is not awaited"
    assert names(sent) == ["reserve", "cancel", "release"]


def test_a_refusal_of_a_compensation_already_passed_still_flags_the_saga(saga, sent):
    deliver(saga, "t.placed")
    deliver(saga, "t.reserved")
    deliver(saga, "t.cancelled", reason="changed my mind")
    deliver(saga, "t.refunded")  # voided: the charge had not landed yet
    deliver(saga, "t.released")
    deliver(saga, "t.paid", charge="ch_late")  # it lands: undone again...
    deliver(saga, "t.refund-failed", reason="the charge cannot be refunded")  # ...refused
    done = instance()
    assert done.status == Status.COMPENSATED
    assert done.stuck, "the money is still charged: a person must look"
    assert done.data["_failed"] == {"pay": "the charge cannot be refunded"}


# A saga whose last step that can be undone (the pivot, "ship") may turn out final.
PIVOTED = SagaDefinition(
    name="pivoted",
    started_by="p.placed",
    key_of=lambda reply: reply.data["order"],
    initial_data=lambda reply: {"order": reply.data["order"]},
    steps=(
        Step(
            name="pay",
            command=_cmd("pay"),
            succeeded_on=frozenset({"p.paid"}),
            compensation=_cmd("refund"),
            compensated_on=frozenset({"p.refunded"}),
            **TIMING,
        ),
        Step(
            name="ship",
            command=_cmd("ship"),
            succeeded_on=frozenset({"p.booked"}),
            compensation=_cmd("unbook"),
            compensated_on=frozenset({"p.unbooked"}),
            too_late_on=frozenset({"p.gone"}),
            **TIMING,
        ),
        Step(name="confirm", command=_cmd("confirm"), succeeded_on=frozenset({"p.confirmed"})),
    ),
    aborted_by=frozenset({"p.cancel-asked"}),
    on_compensation=lambda data, reason, command_id: Cmd("cancel", data["order"], command_id),
    on_resumed=lambda data, reason, command_id: Cmd("refuse", data["order"], command_id, reason),
)


@pytest.fixture
def pivoted(sent, clock) -> SagaManager:
    return SagaManager(PIVOTED, send=sent.append, now=clock)


def pivoted_instance() -> SagaInstance:
    return SagaInstance.objects.get(saga="pivoted", key="o-1")


def test_the_outcome_waits_for_the_pivot_to_be_undone(pivoted, sent):
    for event_type in ("p.placed", "p.paid", "p.booked", "p.confirmed", "p.cancel-asked"):
        deliver(pivoted, event_type)
    assert names(sent)[-1] == "unbook", "the pivot first, and no outcome yet"

    deliver(pivoted, "p.unbooked")

    assert names(sent)[-2:] == ["cancel", "refund"]
    deliver(pivoted, "p.refunded")
    assert pivoted_instance().status == Status.COMPENSATED


def test_a_pivot_that_is_final_refuses_the_cancel_and_the_saga_goes_on(pivoted, sent):
    for event_type in ("p.placed", "p.paid", "p.booked", "p.confirmed", "p.cancel-asked"):
        deliver(pivoted, event_type)

    deliver(pivoted, "p.gone", reason="the parcel has left")

    assert names(sent)[-2:] == ["unbook", "refuse"]
    assert sent[-1].reason == "the parcel has left"
    assert not {"cancel", "refund"} & set(names(sent)), "nothing undone, nothing decided"
    assert pivoted_instance().status == Status.COMPLETED


def test_a_saga_that_was_confirming_goes_back_to_confirming(pivoted, sent):
    for event_type in ("p.placed", "p.paid", "p.booked", "p.cancel-asked"):
        deliver(pivoted, event_type)
    first_confirm = next(c for c in sent if c.name == "confirm")

    deliver(pivoted, "p.gone")

    assert names(sent)[-2:] == ["refuse", "confirm"]
    assert sent[-1].command_id != first_confirm.command_id, "a new epoch"
    deliver(pivoted, "p.confirmed")
    assert pivoted_instance().status == Status.COMPLETED


def test_a_second_cancel_after_a_refusal_is_not_taken_for_the_first(pivoted, sent):
    for event_type in ("p.placed", "p.paid", "p.booked", "p.confirmed", "p.cancel-asked"):
        deliver(pivoted, event_type)
    deliver(pivoted, "p.gone")

    deliver(pivoted, "p.cancel-asked")

    unbooks = [c for c in sent if c.name == "unbook"]
    assert len(unbooks) == 2
    assert unbooks[0].command_id != unbooks[1].command_id, "the inbox must run it again"


def test_the_pivots_compensation_cannot_be_resolved_by_hand(pivoted, sent, clock):
    for event_type in ("p.placed", "p.paid", "p.booked", "p.confirmed", "p.cancel-asked"):
        deliver(pivoted, event_type)
    for _ in range(3):
        clock.now = pivoted_instance().deadline_at
        pivoted.fire_deadlines()
    assert pivoted_instance().stuck

    assert not pivoted.resolve(pivoted_instance(), "sure it is fine")
    assert "cancel" not in names(sent), "only the participant can say the parcel stayed"


def test_a_step_that_may_turn_out_final_must_be_the_last_that_can_be_undone():
    with pytest.raises(ValueError, match="no step after it may be undone"):
        SagaDefinition(
            name="bad",
            started_by="b.placed",
            key_of=lambda reply: "k",
            initial_data=lambda reply: {},
            steps=(
                Step(
                    name="ship",
                    command=_cmd("ship"),
                    succeeded_on=frozenset({"b.booked"}),
                    compensation=_cmd("unbook"),
                    too_late_on=frozenset({"b.gone"}),
                ),
                Step(
                    name="pay",
                    command=_cmd("pay"),
                    succeeded_on=frozenset({"b.paid"}),
                    compensation=_cmd("refund"),
                ),
            ),
        )
