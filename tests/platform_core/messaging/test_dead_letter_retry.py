"""Retrying dead letters: every letter gets an answer, through the path it came from.

A consumer's letter is delivered again whether it holds a CloudEvent's attributes or only
the bytes and Kafka headers of a message that was none; a command's letter runs its task
again. A retry that fails updates the same letter (attempts, last error), never adds one.
`dead_letters retry --all` goes on past failures, prints one line per letter and exits
non-zero when any was not retried.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from inventory.commands import RegisterProduct
from platform_core.commands.command_outbox import command_failure
from platform_core.eventsourcing.messages import MessageContext
from platform_core.eventsourcing.retry import RetryPolicy
from platform_core.messaging import dead_letters
from platform_core.messaging.consumers import ConsumerGroup, Outcome
from platform_core.messaging.envelope import Envelope
from platform_core.models import DeadLetter, StoredEvent
from platform_core.runtime import Runtime

# A consumer drops a connection that broke between attempts: that needs autocommit.
pytestmark = pytest.mark.django_db(transaction=True)

STOCK_CHANGED = "inventory.stock-level-changed.v1"
FAST = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001)
BINARY = b"\x00\xff stock \x00"


def _poison(n: int, source: str = "consumer:orders") -> DeadLetter:
    """A consumer's letter for bytes that were no CloudEvent, as the Kafka runner keeps it."""
    payload, encoding = dead_letters.payload_of(b"\x00\xff garbage")
    return dead_letters.record(
        dead_letters.Failure(
            source=source,
            destination="shipping.events.v1",
            message_id=f"shipping.events.v1/0/{n}",
            payload=payload,
            headers={"content-type": "a\x00b", **encoding},
            attempts=1,
        ),
        ValueError("not a CloudEvent: missing ce_id \x00"),
    )


class Handler:
    """A consumer's handler that fails while `broken`, and keeps what it handled."""

    def __init__(self) -> None:
        self.broken = True
        self.handled: list[Envelope] = []

    def __call__(self, envelope: Envelope) -> None:
        if self.broken:
            raise RuntimeError(f"stock service down (attempt {len(self.handled)})")
        self.handled.append(envelope)


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def group(handler: Handler) -> ConsumerGroup:
    return ConsumerGroup(
        "effects", {STOCK_CHANGED: handler}, topics=["t"], retry=FAST, sleep=lambda _: None
    )


def _paths(group: ConsumerGroup) -> dict[str, dead_letters.Redeliver]:
    return {group.source: group.redeliver}


def test_a_poison_letter_is_stored_without_nul_and_keeps_its_bytes():
    letter = _poison(1)
    letter.refresh_from_db()

    assert letter.headers == {"content-type": "a\ufffdb", "payload_encoding": "base64"}
    assert "\x00" not in letter.error
    assert dead_letters.payload_of(b"\x00\xff garbage")[0] == letter.payload


def test_a_failed_retry_of_a_cloudevent_updates_the_same_letter_until_it_passes(group, handler):
    envelope = Envelope(
        id=str(uuid.uuid4()),
        type=STOCK_CHANGED,
        source="/inventory",
        time=timezone.now(),
        topic="t",
        key="K-1",
        data=BINARY,
    )
    assert group.handle(envelope) == Outcome.DEAD_LETTERED
    letter = DeadLetter.objects.get()
    assert (letter.attempts, letter.headers["payload_encoding"]) == (2, "base64")

    assert not dead_letters.retry(letter, _paths(group))
    handler.broken = False
    assert dead_letters.retry(letter, _paths(group))

    letter = DeadLetter.objects.get()
    assert letter.attempts == 4
    assert letter.error == "RuntimeError: stock service down (attempt 0)"
    assert letter.status == DeadLetter.Status.RETRIED
    [delivered] = handler.handled
    assert (delivered.id, delivered.data, delivered.key) == (envelope.id, BINARY, "K-1")


def test_a_letter_without_cloudevent_attributes_is_read_again_and_delivered(group, handler):
    """An older consumer refused a message that this one reads: its letter holds only the
    bytes and the Kafka headers, and a retry reads them as a consumer would."""
    handler.broken = False
    message_id = str(uuid.uuid4())
    ce_headers = {
        "ce_specversion": "1.0",
        "ce_id": message_id,
        "ce_type": STOCK_CHANGED,
        "ce_source": "/inventory",
    }
    letter = dead_letters.record(
        dead_letters.Failure(
            source=group.source,
            destination="t",
            message_id="t/0/7",
            payload='{"sku": "TEA"}',
            headers=ce_headers,
            attempts=1,
        ),
        ValueError("not a CloudEvent: unsupported spec version"),
    )

    assert dead_letters.retry(letter, _paths(group))

    [delivered] = handler.handled
    assert (delivered.id, delivered.topic, delivered.data) == (message_id, "t", b'{"sku": "TEA"}')
    assert DeadLetter.objects.get().status == DeadLetter.Status.RETRIED


def test_a_letter_that_still_is_no_cloudevent_fails_again_as_the_same_letter(
    platform_runtime: Runtime,
):
    letter = _poison(1)
    out = StringIO()

    with pytest.raises(CommandError, match="1 dead letter"):
        call_command("dead_letters", "retry", str(letter.pk), stdout=out)

    [line, summary] = out.getvalue().splitlines()
    assert line.startswith(f"failed again {letter.pk} (consumer:orders shipping.events.v1/0/1): ")
    assert "not a CloudEvent: missing ce_id" in line
    assert summary == "0 retried, 1 failed again, 0 cannot be retried"
    [again] = DeadLetter.objects.all()
    assert (again.pk, again.attempts, again.status) == (letter.pk, 2, DeadLetter.Status.PENDING)
    assert again.error.startswith("ValueError: not a CloudEvent: missing ce_id, ce_type")


def _command_letter(sku: str) -> tuple[DeadLetter, str]:
    """The letter a worker keeps of `restock_product` that failed for good."""
    command_id = str(uuid.uuid4())
    kwargs = {"sku": sku, "quantity": 2, "command_id": command_id}
    failure = command_failure(
        task="inventory.tasks.restock_product",
        queue="inventory",
        message_id=command_id,
        payload=json.dumps(kwargs),
        context=MessageContext(correlation_id="corr-retry"),
        attempts=1,
    )
    return dead_letters.record(failure, LookupError(f"no product {sku}")), command_id


def _restocks(sku: str) -> list[Any]:
    return list(
        StoredEvent.objects.filter(
            stream_id=f"stock-{sku}", event_type="inventory.StockReplenished"
        ).values_list("metadata__causation_id", flat=True)
    )


def test_a_failed_retry_of_a_command_updates_the_same_letter_until_it_passes(
    platform_runtime: Runtime,
):
    letter, command_id = _command_letter("TEA-LATER")

    with pytest.raises(CommandError):
        call_command("dead_letters", "retry", str(letter.pk), stdout=StringIO())
    again = DeadLetter.objects.get()
    assert (again.pk, again.attempts) == (letter.pk, 2)
    assert again.error.startswith("AggregateNotFound")

    platform_runtime.bus.handle(
        RegisterProduct(sku="TEA-LATER", name="Tea", price=Decimal("3.00"), initial_stock=0)
    )
    call_command("dead_letters", "retry", str(letter.pk), stdout=StringIO())

    assert _restocks("TEA-LATER") == [command_id]
    assert DeadLetter.objects.get().status == DeadLetter.Status.RETRIED


def test_retry_all_goes_on_past_failures_reports_each_letter_and_exits_non_zero(
    platform_runtime: Runtime,
):
    platform_runtime.bus.handle(
        RegisterProduct(sku="TEA-NOW", name="Tea", price=Decimal("3.00"), initial_stock=0)
    )
    poison = _poison(1)
    runs, _ = _command_letter("TEA-NOW")
    fails, _ = _command_letter("NO-SUCH-TEA")
    retired = _poison(2, source="consumer:retired-group")
    corrupt = _poison(3)
    DeadLetter.objects.filter(pk=corrupt.pk).update(payload="not base64!")
    out = StringIO()

    with pytest.raises(CommandError, match="4 dead letter"):
        call_command("dead_letters", "retry", "--all", stdout=out)

    lines = out.getvalue().splitlines()
    said = {int(line.split(" (")[0].rsplit(" ", 1)[1]): line for line in lines[:-1]}
    assert sorted(said) == sorted(x.pk for x in (poison, runs, fails, retired, corrupt))
    assert said[runs.pk].startswith(f"retried {runs.pk} ")
    assert said[fails.pk].startswith(f"failed again {fails.pk} ")
    assert said[poison.pk].startswith(f"failed again {poison.pk} ")
    assert said[retired.pk].endswith("no retry path for source 'consumer:retired-group'")
    assert "is not the base64 it says it is" in said[corrupt.pk]
    assert lines[-1] == "1 retried, 2 failed again, 2 cannot be retried"
    assert DeadLetter.objects.count() == 5
    assert list(DeadLetter.objects.filter(status=DeadLetter.Status.RETRIED)) == [runs]


def test_an_error_of_the_retry_itself_is_recorded_on_the_letter_and_the_next_goes_on():
    def broker_down(letter: DeadLetter) -> bool:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    first, second = _poison(1, source="celery:x"), _poison(2, source="celery:x")

    results = list(dead_letters.retry_each([first, second], {"celery:x": broker_down}))

    assert [r.outcome for r in results] == [dead_letters.Outcome.FAILED] * 2
    for letter in (first, second):
        letter.refresh_from_db()
        assert (letter.attempts, letter.error) == (
            2,
            "ConnectionRefusedError: [Errno 111] Connection refused",
        )


def test_a_letter_failing_again_while_it_is_retried_stays_pending():
    """A message re-published to a broker can fail again, and be recorded, before the
    retry that sent it returns: the letter is then pending, not marked retried."""
    letter = _poison(1, source="celery:x")

    def fails_again_meanwhile(letter: DeadLetter) -> bool:
        dead_letters.failed_again(letter, KeyError("unknown task"))
        return True

    assert dead_letters.retry(letter, {"celery:x": fails_again_meanwhile})
    letter.refresh_from_db()
    assert (letter.status, letter.attempts) == (DeadLetter.Status.PENDING, 2)
