"""The relay's lanes: command rows go to RabbitMQ and event rows to Kafka (here, the
in-process transport), each in id order and backed off on its own, so a broker that is
down holds up only the messages that go to it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from random import Random
from uuid import uuid4

import pytest
from django.db import connections
from django.utils import timezone

from config.celery import app
from inventory.tasks import restock_product
from platform_core.commands.celery_commands import send_command
from platform_core.commands.command_outbox import CeleryCommandPublisher, relay_lanes
from platform_core.eventsourcing.retry import RetryPolicy
from platform_core.messaging.envelope import Envelope, Outgoing, PublishReport
from platform_core.messaging.local import LocalPublisher
from platform_core.messaging.outbox import Outbox
from platform_core.messaging.relay import LEADER_LOCK_KEY, OutboxRelay
from platform_core.models import OutboxMessage
from platform_core.storage import pg
from tests.platform_core.messaging.messaging_support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

NOTHING_LISTENS = "amqp://guest:guest@127.0.0.1:9//"


def clock_at(seconds: float) -> Callable[[], float]:
    """A relay's clock that stands still: a lane backing off stays backing off until the
    test says its time has come, however slow the machine."""
    return lambda: seconds


def backoff() -> RetryPolicy:
    """The relay's own backoff, its jitter seeded: the same waits on every run."""
    return RetryPolicy(max_attempts=1_000_000, base_delay=0.5, max_delay=30, jitter=Random(7))


@pytest.fixture
def through_a_broker() -> Iterator[None]:
    """Commands go to a broker rather than running in-process, whatever the settings."""
    before = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = before


def an_event() -> None:
    envelope = Envelope(
        id=str(uuid4()),
        type="tests.something-happened.v1",
        source="/tests",
        time=timezone.now(),
        topic="tests.events.v1",
        key="k",
    )
    Outbox().add([envelope])


def unpublished(kind: str) -> int:
    rows = OutboxMessage.objects.filter(published_at__isnull=True)
    commands = rows.filter(topic__startswith="command:")
    return commands.count() if kind == "command" else rows.count() - commands.count()


def test_events_go_out_while_the_command_broker_is_down(through_a_broker: None) -> None:
    for _ in range(3):
        send_command(restock_product, sku="MUG-1", quantity=1)
    an_event()
    relay = OutboxRelay(
        lanes=relay_lanes(
            commands=CeleryCommandPublisher(app, broker_url=NOTHING_LISTENS),
            events=LocalPublisher([]),
        ),
        batch_size=2,  # fewer than the commands waiting ahead of the event
        backoff=backoff(),
        clock=clock_at(1000.0),
    )

    assert relay.relay_once() == (1, 2)
    assert (unpublished("command"), unpublished("event")) == (3, 0)

    an_event()
    assert relay.relay_once(waiting=True) == (1, 0), "the command lane waits out its backoff"
    assert unpublished("command") == 3


def test_a_lane_whose_rows_went_elsewhere_leaves_its_backoff(through_a_broker: None) -> None:
    """Another relay published them meanwhile: the lane has nothing left to retry, and
    must not keep a deadline that would wake the relay at once, again and again."""
    send_command(restock_product, sku="MUG-1", quantity=1)
    commands, events = relay_lanes(
        commands=CeleryCommandPublisher(app, broker_url=NOTHING_LISTENS),
        events=LocalPublisher([]),
    )
    relay = OutboxRelay(lanes=[commands, events], backoff=backoff(), clock=clock_at(1000.0))
    assert relay.relay_once() == (0, 1)
    assert commands.failures == 1
    assert commands.retry_at > 0

    OutboxMessage.objects.update(published_at=timezone.now())  # another relay's work
    commands.retry_at = 999.0  # its backoff has run out

    assert relay.relay_once(waiting=True) == (0, 0)
    assert (commands.failures, commands.retry_at) == (0, 0.0)


class _Wake(threading.Event):
    """A relay's wake-up that counts the relay's waits on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


class _CountingRelay(OutboxRelay):
    """Counts the rounds (`relay_once`) the relay runs."""

    rounds = 0

    def relay_once(self, *, waiting: bool = False) -> tuple[int, int]:
        self.rounds += 1
        return super().relay_once(waiting=waiting)


def _relaying(
    relay: OutboxRelay, wake: _Wake, rounds_then: Callable[[int], bool], poll: float = 60
) -> int:
    """Run the relay in a thread (polling every `poll` seconds) until `rounds_then(waits)`
    holds; its rounds."""
    stop = threading.Event()

    def run() -> None:
        try:
            relay.run_forever(stop, wake, idle_seconds=poll)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_until(lambda: rounds_then(wake.waits), what="the relay to wait")
    finally:
        stop.set()
        wake.set()
        thread.join(timeout=30)
    return relay.rounds if isinstance(relay, _CountingRelay) else 0


def leader_pid() -> int | None:
    """The backend holding the relay leader's lock, if one does."""
    rows = pg.fetchall(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = %s AND objid = %s",
        [LEADER_LOCK_KEY >> 32, LEADER_LOCK_KEY & 0xFFFFFFFF],
    )
    return int(rows[0][0]) if rows else None


@pytest.mark.postgres
def test_a_leader_whose_every_lane_backs_off_keeps_its_session(through_a_broker: None) -> None:
    """PostgreSQL ends a leader's session silent for `leader_idle_seconds` (a hung
    leader's); one waiting out a broker's backoff is not hung, and says so each round."""
    send_command(restock_product, sku="MUG-1", quantity=1)
    an_event()
    slow = RetryPolicy(max_attempts=1_000_000, base_delay=30, max_delay=30, jitter=Random(7))
    relay = OutboxRelay(
        lanes=relay_lanes(
            commands=CeleryCommandPublisher(app, broker_url=NOTHING_LISTENS), events=_Raising()
        ),
        backoff=slow,
        clock=clock_at(1000.0),  # the lanes' backoff never runs out
        leader_idle_seconds=1,
    )
    leaders: list[int | None] = []

    def sixty_rounds(waits: int) -> bool:
        leaders.append(leader_pid())
        return waits >= 60

    # Each wait lasts its 0.05 s (nothing wakes it): 60 of them outlast the idle limit.
    _relaying(relay, _Wake(), sixty_rounds, poll=0.05)

    assert leaders[-1] is not None
    assert set(leaders) - {None} == {leaders[-1]}, "one session led throughout"
    assert (unpublished("command"), unpublished("event")) == (1, 1)


def test_a_round_that_found_rows_waits_for_a_wake_up_rather_than_querying_again() -> None:
    for _ in range(3):
        an_event()
    wake, published = _Wake(), LocalPublisher([])
    relay = _CountingRelay(lanes=relay_lanes(commands=LocalPublisher([]), events=published))

    rounds = _relaying(relay, wake, lambda waits: waits >= 1 and unpublished("event") == 0)

    assert rounds == 1, "one round published the three rows, then the relay waited"


def test_full_batches_go_on_at_once_until_one_is_not_full() -> None:
    for _ in range(5):
        an_event()
    wake = _Wake()
    relay = _CountingRelay(
        lanes=relay_lanes(commands=LocalPublisher([]), events=LocalPublisher([])), batch_size=2
    )

    rounds = _relaying(relay, wake, lambda waits: waits >= 1)

    assert unpublished("event") == 0
    assert rounds == 3, "2 + 2 + 1 rows, and no wait between the full batches"


class _Raising:
    """A publisher that raises rather than report its failures."""

    def publish(self, batch: Sequence[Outgoing]) -> PublishReport:
        raise RuntimeError("the broker client blew up")

    def close(self) -> None:
        pass


class _Counting:
    def __init__(self) -> None:
        self.sent: list[int] = []

    def publish(self, batch: Sequence[Outgoing]) -> PublishReport:
        self.sent += [item.row_id for item in batch]
        return PublishReport(delivered=[item.row_id for item in batch])

    def close(self) -> None:
        pass


def test_a_publisher_that_raises_backs_off_its_own_lane_and_the_others_are_marked() -> None:
    for _ in range(2):
        send_command(restock_product, sku="MUG-1", quantity=1)
    an_event()
    commands = _Counting()
    relay = OutboxRelay(
        lanes=relay_lanes(commands=commands, events=_Raising()),
        backoff=backoff(),
        clock=clock_at(1000.0),
    )

    assert relay.relay_once(waiting=True) == (2, 1)
    assert relay.relay_once(waiting=True) == (0, 0), "the event lane waits out its backoff"

    assert len(commands.sent) == 2, "each command went out once"
    assert (unpublished("command"), unpublished("event")) == (0, 1)
    [failed] = OutboxMessage.objects.filter(published_at__isnull=True)
    assert (failed.attempts, "blew up" in failed.last_error) == (1, True)
