"""Commits in one process wake the relay and the projector of another (PostgreSQL
LISTEN/NOTIFY: migration 0007's trigger, `platform_core.messaging.wakeups.CommitListener`), and
the projector comes back for events an older transaction hid (`CatchUpWatch`).

PostgreSQL delivers one session's notifications in commit order, so "a rolled-back
insert wakes nobody" is checked without waiting for a silence: after the rollback a
committed insert follows, and once its notification has arrived, one from the rollback
would have arrived before it: the listener counts one. The processes under test poll
every 60 s, so only a notification can make them act within the few seconds allowed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from inventory.commands import RegisterProduct
from platform_core.eventsourcing.eventstore import EventMetadata, NewEvent
from platform_core.messaging.wakeups import (
    APPLICATION_NAME,
    OUTBOX_CHANNEL,
    CatchUpWatch,
    CommitListener,
)
from platform_core.models import LoopHeartbeat, OutboxMessage
from platform_core.runtime import Runtime
from platform_core.storage.sql_store import event_store_for
from platform_core.testing.kafka_mock import MockKafkaCluster
from projections.models import ProductStock
from tests.platform_core.messaging.messaging_support import Counted
from tests.support import catch_up_fully, newest_stored

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]
DEADLINE = 10.0
TOPIC = "tests.wakeups.v1"
QUICK_CLOSE = 0.05  # seconds until a closed listener's thread notices


@pytest.fixture
def woken() -> Iterator[Counted]:
    """Set by a listener on the outbox channel; cleared once it listens."""
    wake = Counted()
    with CommitListener({OUTBOX_CHANNEL: wake}, check_seconds=QUICK_CLOSE) as listener:
        assert listener.wait_listening(DEADLINE)
        wake.clear()  # the listener wakes everyone once it listens
        wake.times = 0
        yield wake


def add_outbox_row() -> OutboxMessage:
    return OutboxMessage.objects.create(
        topic=TOPIC,
        message_key="key",
        message_id=uuid4(),
        event_type="tests.something-happened.v1",
        source="/tests",
        occurred_at=timezone.now(),
        data="{}",
    )


def append_event() -> None:
    event = NewEvent(
        event_type="FundsDeposited", data=b"{}", metadata=EventMetadata(event_id=uuid4())
    )
    event_store_for().append(f"account-{uuid4()}", "Account", 0, [event])


def rolled_back(write: Callable[[], object]) -> None:
    with transaction.atomic():
        write()
        transaction.set_rollback(True)


def test_a_committed_outbox_row_wakes_the_relay(woken: Counted) -> None:
    with transaction.atomic():
        add_outbox_row()
        add_outbox_row()

    assert woken.wait(DEADLINE)


def test_a_rolled_back_outbox_row_wakes_nobody(woken: Counted) -> None:
    rolled_back(add_outbox_row)
    add_outbox_row()

    assert woken.wait(DEADLINE)
    # Notifications arrive in commit order: one from the rollback would have come first.
    assert woken.times == 1


def test_events_appended_alone_notify_nobody(woken: Counted) -> None:
    """No trigger on event_store (see platform_core.messaging.wakeups): the projector sees such
    appends on its poll; a later outbox commit is the first notification."""
    append_event()
    add_outbox_row()

    assert woken.wait(DEADLINE)
    assert woken.times == 1


def test_the_listener_reconnects_after_its_connection_is_killed() -> None:
    wake = threading.Event()
    with CommitListener({OUTBOX_CHANNEL: wake}, check_seconds=QUICK_CLOSE) as listener:
        assert listener.wait_listening(DEADLINE)
        wake.clear()
        killed = listener.backend_pid
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [killed])

        assert wake.wait(DEADLINE), "losing the connection wakes the worker"
        assert listener.wait_listening(DEADLINE), "listening again"
        assert listener.backend_pid not in (None, killed)
        wake.clear()
        add_outbox_row()
        assert wake.wait(DEADLINE)


@contextmanager
def an_older_transaction_open() -> Iterator[None]:
    """A transaction on another connection that holds a transaction id until the block
    ends: the log hides whatever commits after it began."""
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
    ) as other:
        other.execute("SELECT pg_current_xact_id()")
        yield
        other.rollback()


def test_the_projector_comes_back_for_events_an_older_transaction_hid_from_it(
    platform_runtime: Runtime,
) -> None:
    runner, wake = platform_runtime.projections, threading.Event()
    watch = CatchUpWatch(runner.names, wake, first_pause=0)
    runner.catch_up()
    with an_older_transaction_open():
        append_event()
        runner.catch_up()  # woken by the commit, it finds nothing it can see yet
        assert newest_stored() > runner.checkpoint(runner.names[0])
    # The older transaction has ended, which notifies nobody.

    watch()
    assert wake.is_set(), "woken again for the hidden events"

    wake.clear()
    catch_up_fully(runner)  # other databases' transactions on the server hide events too
    watch()
    assert not wake.is_set(), "nothing left behind"


# Real worker processes. Each first handles a warm-up write, so that what woke it at start
# is spent, and goes idle; within the deadline only a notification can wake it again.


def manage_py(*args: str, **env: str) -> subprocess.Popen[bytes]:
    """`manage.py <args>` on the test database, its output kept for a failure message."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    url = f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for(check: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    """Until `check` holds; fails after DEADLINE or if the process exits."""
    deadline = time.monotonic() + DEADLINE
    while not check():
        if process.poll() is not None:
            raise AssertionError(f"the process exited first\n{process.communicate()[0].decode()}")
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def other_sessions(condition: str, *params: str) -> int:
    """Other sessions on the test database that meet an SQL condition on pg_stat_activity."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            f" AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND {condition}",
            params,
        )
        return int(cursor.fetchone()[0])


def worker_idle_after_a_read() -> bool:
    """The worker's own session (not its listener's) is idle after a SELECT or a write.

    Asked once the test has seen the worker's last commit, that statement came after the
    worker's last read: the round has read and done what there was (a relay ends a round
    that published on the UPDATE that marks the rows, one that found none on its read, a
    union in parentheses; a heartbeat's upsert on its COMMIT), and only a wake-up (or the
    poll) starts another."""
    worker = "application_name <> %s"
    reads = "query LIKE 'SELECT%%' OR query LIKE '(SELECT%%'"
    ends = f"{reads} OR query LIKE 'UPDATE%%' OR query = 'COMMIT'"
    idle = f"{worker} AND state = 'idle' AND ({ends})"
    return other_sessions(worker, APPLICATION_NAME) == 1 == other_sessions(idle, APPLICATION_NAME)


def wait_until_idle(
    process: subprocess.Popen[bytes], write: Callable[[], Callable[[], bool]]
) -> None:
    """Wait for the worker to listen, then for it to handle a warm-up write and go idle."""
    listening = "application_name = %s AND state = 'idle' AND query LIKE 'LISTEN%%'"
    wait_for(lambda: other_sessions(listening, APPLICATION_NAME) == 1, "it to listen", process)
    wait_for(write(), "it to handle the warm-up write", process)
    wait_for(worker_idle_after_a_read, "it to go idle", process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM must end the loop at once, not after its 60 s poll."""
    if process.poll() is not None:
        return  # it already failed the test
    process.send_signal(signal.SIGTERM)
    try:
        output = process.communicate(timeout=DEADLINE)[0].decode()
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, output


@pytest.fixture
def kafka() -> Iterator[str]:
    with MockKafkaCluster(brokers=1) as cluster:
        cluster.create_topic(TOPIC)
        yield cluster.bootstrap_servers


def publish_a_row() -> Callable[[], bool]:
    """Commit an outbox row; the check that it has been published."""
    row = add_outbox_row()
    return OutboxMessage.objects.filter(pk=row.pk, published_at__isnull=False).exists


def test_a_relay_process_publishes_a_new_outbox_row_without_waiting_for_its_poll(
    kafka: str,
) -> None:
    relay = manage_py("relay_outbox", "--poll", "60", KAFKA_BOOTSTRAP_SERVERS=kafka)
    try:
        wait_until_idle(relay, publish_a_row)

        wait_for(publish_a_row(), "the relay to publish a new row", relay)
    finally:
        stop(relay)


def registering(runtime: Runtime) -> Callable[[], Callable[[], bool]]:
    def register_a_product() -> Callable[[], bool]:
        """Register a product; the check that the read model shows it."""
        sku = f"MUG-{uuid4().hex[:8].upper()}"
        runtime.bus.handle(
            RegisterProduct(sku=sku, name="Mug", price=Decimal("7.50"), initial_stock=3)
        )
        return ProductStock.objects.filter(sku=sku).exists

    return register_a_product


def kill_other_sessions() -> int:
    """Terminate every other client session on the test database; how many there were."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        )
        return int(cursor.fetchone()[0])


@contextmanager
def an_idle_projector(
    runtime: Runtime,
) -> Iterator[tuple[subprocess.Popen[bytes], Callable[[], Callable[[], bool]]]]:
    """`run_projections` polling every 60 s, listening and idle; and how to register a
    product (it answers the check that the read model shows it)."""
    register_a_product = registering(runtime)
    projector = manage_py("run_projections", "--poll", "60")
    try:
        wait_until_idle(projector, register_a_product)
        yield projector, register_a_product
    finally:
        stop(projector)


def test_a_projector_process_projects_new_events_without_waiting_for_its_poll(
    platform_runtime: Runtime,
) -> None:
    with an_idle_projector(platform_runtime) as (projector, register_a_product):
        wait_for(register_a_product(), "the projector to project a new product", projector)


def test_a_projector_process_heals_after_its_connections_are_killed(
    platform_runtime: Runtime,
) -> None:
    with an_idle_projector(platform_runtime) as (projector, register_a_product):
        assert kill_other_sessions() == 2, "the fault: its session and its listener's"
        listening = "application_name = %s AND state = 'idle' AND query LIKE 'LISTEN%%'"
        wait_for(
            lambda: other_sessions(listening, APPLICATION_NAME) == 1, "it to listen", projector
        )
        wait_for(register_a_product(), "the projector to project on a new connection", projector)
        healthy = LoopHeartbeat.objects.filter(loop="projector", failing_since__isnull=True)
        wait_for(healthy.exists, "its heartbeat to say it makes progress again", projector)
