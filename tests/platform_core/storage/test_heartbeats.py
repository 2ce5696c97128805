"""`storage.heartbeats.Heartbeat`: a loop's row says when its last good round ended and,
while it fails, since when and why; it is written at most every few seconds, at once on
recovery, and never fails the loop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.db import OperationalError

from platform_core.models import LoopHeartbeat
from platform_core.operations.loops import loop_health
from platform_core.sagas.manager import run_timers
from platform_core.storage.heartbeats import Heartbeat

pytestmark = pytest.mark.django_db(transaction=True)

START = datetime(2026, 12, 7, 12, 0, tzinfo=datetime.now().astimezone().tzinfo)


class Clocks:
    """A monotonic clock and a wall clock that move together, by hand."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return START + timedelta(seconds=self.seconds)


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def heartbeat(clocks: Clocks) -> Heartbeat:
    return Heartbeat(
        "projector", instance="host:1", every=5, clock=clocks.monotonic, now=clocks.now
    )


def row() -> LoopHeartbeat:
    return LoopHeartbeat.objects.get(loop="projector", instance="host:1")


def test_beats_are_written_at_most_every_few_seconds(heartbeat: Heartbeat, clocks: Clocks):
    heartbeat.beat()
    assert row().beat_at == START

    clocks.seconds = 4
    heartbeat.beat()
    assert row().beat_at == START, "not written again within 5 s"

    clocks.seconds = 5
    heartbeat.beat()
    assert row().beat_at == START + timedelta(seconds=5)


def test_a_failing_loop_keeps_its_last_beat_and_says_why(heartbeat: Heartbeat, clocks: Clocks):
    heartbeat.beat()
    clocks.seconds = 1
    heartbeat.failed(OperationalError("the connection is lost"))

    failing = row()
    assert failing.beat_at == START
    assert failing.failing_since == START + timedelta(seconds=1)
    assert failing.last_error == "OperationalError: the connection is lost"

    clocks.seconds = 7
    heartbeat.failed(OperationalError("still lost"))
    assert row().failing_since == START + timedelta(seconds=1), "since the first failure"
    assert row().last_error == "OperationalError: still lost"

    clocks.seconds = 8
    heartbeat.beat()  # within 5 s of the last write, yet a recovery is written at once
    recovered = row()
    assert (recovered.beat_at, recovered.failing_since, recovered.last_error) == (
        START + timedelta(seconds=8),
        None,
        "",
    )


def test_a_loop_that_fails_from_its_first_round_has_a_row_from_then(heartbeat: Heartbeat):
    heartbeat.failed(RuntimeError("the broker refused 3 message(s)"))

    assert (row().beat_at, row().failing_since) == (START, START)


def test_a_stopped_loop_keeps_its_row_so_that_nobody_running_it_shows(
    heartbeat: Heartbeat, clocks: Clocks
):
    """A clean stop whose replacement never starts must not make the loop vanish from
    the metrics: its last beat stays and ages into a stall."""
    heartbeat.beat()

    heartbeat.stop()

    assert row().beat_at == START
    [health] = loop_health(START + timedelta(seconds=31))
    assert (health.loop, health.stalled) == ("projector", True)


def test_a_beat_the_database_refuses_does_not_fail_the_loop(
    heartbeat: Heartbeat, monkeypatch: pytest.MonkeyPatch
):
    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(LoopHeartbeat.objects, "filter", refuse)

    heartbeat.beat()
    heartbeat.failed(RuntimeError("down"))
    heartbeat.stop()

    monkeypatch.undo()
    assert not LoopHeartbeat.objects.exists()


class Recorded(Heartbeat):
    """What a loop told its heartbeat, in order."""

    def __init__(self) -> None:
        super().__init__("recorded", instance="-")
        self.told: list[str] = []

    def beat(self) -> None:
        self.told.append("beat")

    def failed(self, error: BaseException) -> None:
        self.told.append(f"failed: {error}")

    def stop(self) -> None:
        self.told.append("stop")


def scripted(*rounds: object, stop: threading.Event) -> Callable[..., object]:
    """A round that raises or returns each of `rounds` in turn, then stops the loop."""
    remaining = list(rounds)

    def one_round(*args: object, **kwargs: object) -> object:
        outcome = remaining.pop(0)
        if not remaining:
            stop.set()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return one_round


def test_the_projector_tells_its_heartbeat_of_every_round(platform_runtime, monkeypatch):
    stop, told = threading.Event(), Recorded()
    runner = platform_runtime.projections
    monkeypatch.setattr(runner, "catch_up", scripted(OperationalError("lost"), 0, stop=stop))

    runner.run_forever(stop, threading.Event(), idle_seconds=0, heartbeat=told)

    assert told.told == ["failed: lost", "beat", "stop"]


def test_the_relay_counts_a_refusing_broker_as_no_progress(platform_runtime, monkeypatch):
    stop, told = threading.Event(), Recorded()
    relay = platform_runtime.relay
    rounds = scripted(OperationalError("lost"), (0, 3), (2, 0), stop=stop)
    monkeypatch.setattr(relay, "relay_once", rounds)

    relay.run_forever(stop, threading.Event(), idle_seconds=0, heartbeat=told)

    assert told.told == ["failed: lost", "failed: the broker refused 3 message(s)", "beat", "stop"]


def test_a_standby_relay_is_no_progress_of_the_relay(platform_runtime, monkeypatch):
    """A leader hanging with the lock must show as stalled, standbys or not."""
    stop, told = threading.Event(), Recorded()
    relay = platform_runtime.relay
    monkeypatch.setattr(relay, "_lead", scripted(False, False, stop=stop))

    relay.run_forever(stop, threading.Event(), idle_seconds=0, heartbeat=told)

    assert told.told == ["stop"]


def test_the_saga_timers_tell_their_heartbeat_of_every_round(platform_runtime, monkeypatch):
    stop, told = threading.Event(), Recorded()
    saga = next(iter(platform_runtime.sagas.values()))
    monkeypatch.setattr(saga, "fire_deadlines", scripted(OperationalError("lost"), 0, stop=stop))

    run_timers([saga], stop, threading.Event(), every=0, heartbeat=told)

    assert told.told == ["failed: lost", "beat", "stop"]
