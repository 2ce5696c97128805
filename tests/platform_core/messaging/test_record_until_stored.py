"""A dead letter is let go only once stored: the store is tried again through an outage."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from django.db import DataError, OperationalError

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


def test_a_letter_the_store_refuses_while_the_database_answers_is_let_go(monkeypatch, caplog):
    """Not an outage: the letter itself is refused (a value its columns cannot hold). The
    message must not hold its consumer or worker slot for good."""
    calls: list[str] = []

    def record(failure: dead_letters.Failure, error: BaseException) -> object:
        calls.append(failure.message_id)
        raise DataError("integer out of range")

    monkeypatch.setattr(dead_letters, "record", record)
    slept = Naps()

    letter = dead_letters.record_until_stored(
        FAILURE, ValueError("poison"), delays=RetryPolicy(), sleep=slept, who="test"
    )

    assert letter is None
    assert len(calls) == dead_letters.STORE_REFUSALS
    assert len(slept) == dead_letters.STORE_REFUSALS - 1
    assert "the message goes unrecorded" in caplog.text


def test_refusals_while_the_database_is_out_of_reach_are_waited_out(monkeypatch):
    calls, slept = refusing(dead_letters.STORE_REFUSALS + 2, monkeypatch), Naps()
    monkeypatch.setattr(dead_letters, "database_reachable", lambda: False)

    letter = dead_letters.record_until_stored(
        FAILURE, ValueError("poison"), delays=RetryPolicy(), sleep=slept, who="test"
    )

    assert letter is not None
    assert len(calls) == dead_letters.STORE_REFUSALS + 3


@pytest.mark.parametrize(
    ("attempts", "kept"), [(-4, 1), (0, 1), (6, 6), (2**40, dead_letters.MAX_ATTEMPTS)]
)
def test_a_failures_count_of_attempts_is_one_its_column_holds(attempts: int, kept: int) -> None:
    """A Celery message's own `retries` may say anything."""
    failure = replace(FAILURE, message_id="m-2", attempts=attempts)

    assert failure.attempts == kept
    assert dead_letters.record(failure, ValueError("bad")).attempts == kept
