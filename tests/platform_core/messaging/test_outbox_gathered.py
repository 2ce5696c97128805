"""`outbox.gathered()`: the adds of a block are written in one insert at its end, and the
relay is woken once, after commit."""

from __future__ import annotations

import threading
from uuid import uuid4

import pytest
from django.db import transaction
from django.utils import timezone

from platform_core.messaging.envelope import Envelope
from platform_core.messaging.outbox import Outbox, gathered
from platform_core.models import OutboxMessage
from tests.platform_core.messaging.messaging_support import Counted

pytestmark = pytest.mark.django_db(transaction=True)


def _envelope(n: int) -> Envelope:
    return Envelope(
        id=str(uuid4()), type="tests.something-happened.v1", source="/tests",
        time=timezone.now(), topic="tests.events.v1", key=f"k-{n}",
    )  # fmt: skip


def test_a_gathered_block_writes_its_rows_in_order_and_wakes_the_relay_once_after_commit() -> None:
    wake = Counted()
    outbox = Outbox(wake=wake)
    envelopes = [_envelope(n) for n in range(3)]

    with transaction.atomic():
        with gathered():
            for envelope in envelopes:
                outbox.add([envelope])
            assert not OutboxMessage.objects.exists(), "held until the block ends"
        assert not wake.is_set()

    assert [row.message_key for row in OutboxMessage.objects.order_by("id")] == [
        "k-0", "k-1", "k-2"
    ]  # fmt: skip
    assert wake.times == 1


def test_a_block_that_fails_writes_nothing_and_wakes_nobody() -> None:
    wake = threading.Event()

    def a_failing_batch() -> None:
        with transaction.atomic(), gathered():
            Outbox(wake=wake).add([_envelope(0)])
            raise RuntimeError("the batch failed")

    with pytest.raises(RuntimeError):
        a_failing_batch()

    assert not OutboxMessage.objects.exists()
    assert not wake.is_set()
