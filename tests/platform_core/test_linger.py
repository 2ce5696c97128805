"""The relay and the projector linger after a round that did work, so that what commits
meanwhile goes out in one batch; a quiet spell's first message goes at once."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

LINGER = 0.05
ROUND = 0.004  # how long each scripted round takes on the fake clock


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Pauses(threading.Event):
    """A stop event that records each pause asked of it and never blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.pauses.append(timeout)
        if len(self.pauses) > 20:  # a loop failing round after round: stop it
            self.set()
        return self.is_set()


def rounds(clock: Clock, stop: threading.Event, *outcomes: object) -> Callable[..., object]:
    """Each call takes ROUND on the clock and returns the next outcome; the last stops."""
    remaining = list(outcomes)

    def one_round(*args: object, **kwargs: object) -> object:
        clock.now += ROUND
        outcome = remaining.pop(0)
        if not remaining:
            stop.set()
        return outcome

    return one_round


def test_the_relay_lingers_after_a_round_that_sent_rows_only(platform_runtime, monkeypatch):
    relay, clock, stop = platform_runtime.relay, Clock(), Pauses()
    monkeypatch.setattr(relay, "_clock", clock)
    monkeypatch.setattr(relay, "relay_once", rounds(clock, stop, (3, 0), (0, 0), (2, 0)))

    relay.run_forever(stop, threading.Event(), idle_seconds=0, linger=LINGER)

    assert stop.pauses == [pytest.approx(LINGER - ROUND), pytest.approx(LINGER - ROUND)]


def test_the_relay_does_not_linger_without_a_linger(platform_runtime, monkeypatch):
    relay, clock, stop = platform_runtime.relay, Clock(), Pauses()
    monkeypatch.setattr(relay, "_clock", clock)
    monkeypatch.setattr(relay, "relay_once", rounds(clock, stop, (3, 0), (2, 0)))

    relay.run_forever(stop, threading.Event(), idle_seconds=0)

    assert stop.pauses == [0.0, 0.0]


def test_the_projector_lingers_after_a_catch_up_that_read_events_only(
    platform_runtime, monkeypatch
):
    runner, clock, stop = platform_runtime.projections, Clock(), Pauses()
    monkeypatch.setattr(runner, "_clock", clock)
    monkeypatch.setattr(runner, "catch_up", rounds(clock, stop, 5, 0, 0, 1))

    runner.run_forever(stop, threading.Event(), idle_seconds=0, linger=LINGER)

    assert stop.pauses == [pytest.approx(LINGER - ROUND), pytest.approx(LINGER - ROUND)]


def test_a_round_longer_than_the_linger_is_followed_at_once(platform_runtime, monkeypatch):
    runner, clock, stop = platform_runtime.projections, Clock(), Pauses()
    monkeypatch.setattr(runner, "_clock", clock)
    slow = rounds(clock, stop, 7)

    def slow_round() -> object:
        clock.now += LINGER * 3
        return slow()

    monkeypatch.setattr(runner, "catch_up", slow_round)

    runner.run_forever(stop, threading.Event(), idle_seconds=0, linger=LINGER)

    assert stop.pauses == [0.0]
