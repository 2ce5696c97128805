"""A dead letter is let go only once stored: the store is tried again through an outage."""

from __future__ import annotations

import random

import pytest
from django.db import OperationalError

from platform_core.eventsourcing.retry import RetryPolicy
from platform_core.messaging import dead_letters

pytestmark = pytest.mark.django_db(transaction=True)  # connections are dropped

FAILURE = dead_letters.Failure(
    source="consumer:test",
    destination="orders.events.v1",
    message_id="m-1",
    payload="{}",
    headers={},
    attempts=5,
)


def refusing(times: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The store refuses `times` times, then stores; the calls are recorded."""
    calls: list[str] = []
    store = dead_letters.record

    def record(failure: dead_letters.Failure, error: BaseException) -> object:
        calls.append(failure.message_id)
        if len(calls) <= times:
            raise OperationalError("the database is away")
        return store(failure, error)

    monkeypatch.setattr(dead_letters, "record", record)
    return calls


class Naps(list[float]):
    """The pauses asked for; too many means the store never took the letter."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if len(self) > 10:
            raise AssertionError(f"still not stored after {len(self)} tries")


def test_the_store_is_tried_until_it_takes_the_letter(monkeypatch):
    calls, slept = refusing(2, monkeypatch), Naps()
    delays = RetryPolicy(base_delay=0.5, jitter=random.Random(7))
    expected = RetryPolicy(base_delay=0.5, jitter=random.Random(7))

    letter = dead_letters.record_until_stored(
        FAILURE, ValueError("poison"), delays=delays, sleep=slept, who="test"
    )

    assert letter is not None
    assert letter.message_id == "m-1"
    assert "poison" in letter.error
    assert calls == ["m-1"] * 3
    assert slept == [expected.delay(1), expected.delay(2)]


def test_a_caller_that_gives_up_is_answered_none_after_one_refusal(monkeypatch):
    calls, slept = refusing(1, monkeypatch), Naps()

    letter = dead_letters.record_until_stored(
        FAILURE,
        ValueError("poison"),
        delays=RetryPolicy(),
        sleep=slept,
        who="test",
        give_up=True,
    )

    assert letter is None
    assert calls == ["m-1"]
    assert slept == []
