"""The fault harness: the deployment's processes (tests/e2e/deployment.py) under a mix of
orders (chaos_support.Traffic) while each fault is injected, proven and restored; then a
good order must be confirmed (the recovery time), the system must settle, and
`manage.py verify_consistency` must find nothing. Each scenario prints one line of figures
(docs/reliability.md keeps the latest).

`make chaos` runs it at full size (CHAOS_ORDERS=20 orders after each fault, outages of
CHAOS_OUTAGE_SECONDS=30); CI runs `make chaos-smoke` (4 orders, 10 s outages). The Celery
worker runs a prefork pool here, so that a pool child can be killed apart from its parent.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psycopg
import psycopg.conninfo
import psycopg.sql
import pytest
import redis
from confluent_kafka import Producer

from platform_core.messaging.relay import LEADER_LOCK_KEY
from platform_core.testing.kafka_mock import NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT
from tests.e2e.chaos_support import Traffic, confirm_one, figures, lost, traffic
from tests.e2e.deployment import CONSUMER_GROUPS, TOPICS, Deployment, deployment

pytestmark = [pytest.mark.chaos, pytest.mark.postgres, pytest.mark.rabbitmq]

ORDERS = int(os.environ.get("CHAOS_ORDERS", "20"))
OUTAGE = float(os.environ.get("CHAOS_OUTAGE_SECONDS", "30"))
REDIS_DB = 9  # the deployment's own, so flushing it touches nobody else's keys

Fault = Callable[[Deployment, Traffic], str]
T = TypeVar("T")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    with deployment(
        tmp_path_factory.mktemp("chaos"),
        worker_pool="prefork",
        SAGA_STEP_SECONDS="3",
        SAGA_GIVE_UP_SECONDS="8",
        KAFKA_SESSION_TIMEOUT_MS="3000",
        LOOP_STALL_SECONDS="10",
        REDIS_URL=f"{redis_url}/{REDIS_DB}",
    ) as platform:
        yield platform


def scenario(running: Deployment, name: str, inject: Fault, seed: int) -> None:
    """Traffic flowing, `inject` the fault (it returns the proof that it happened), a
    good order confirmed after it, ORDERS more placed; then quiet and the oracle."""
    with traffic(running, seed) as flowing:
        proof = inject(running, flowing)
        recovery = confirm_one(running)
        flowing.wait_for_orders(ORDERS)
    report = running.settle()
    print("\n" + figures(name, proof, flowing, recovery, report))
    assert lost(running, flowing.acked) == 0, "an order the API acknowledged is gone"


def count(running: Deployment, sql: str, params: object = ()) -> int:
    return int(running.query(sql, params)[0][0])


def poll(running: Deployment, probe: Callable[[], T], what: str, timeout: float = 60) -> T:
    """Until `probe` answers something truthy; that answer."""
    answers: list[T] = []

    def answered() -> bool:
        answers.append(probe())
        return bool(answers[-1])

    running.wait_until(answered, what, timeout)
    return answers[-1]


# What "mid-work" means for each process: something it has still to do.
def unpublished(running: Deployment) -> int:
    return count(running, "SELECT count(*) FROM outbox WHERE published_at IS NULL")


def unprojected(running: Deployment) -> int:
    return count(
        running,
        "SELECT (SELECT count(*) FROM event_store WHERE event_type = 'orders.OrderPlaced')"
        " - (SELECT count(*) FROM read_order_summary)",
    )


def sagas_running(running: Deployment) -> int:
    return count(running, "SELECT count(*) FROM saga_instances WHERE status = 'running'")


BUSY: dict[str, tuple[str, Callable[[Deployment], int]]] = {
    "relay": ("outbox rows unpublished", unpublished),
    "projector": ("orders not yet projected", unprojected),
    "saga-timers": ("sagas running", sagas_running),
    "worker": ("sagas running", sagas_running),
    **{f"consumer-{group}": ("sagas running", sagas_running) for group in CONSUMER_GROUPS},
}


@pytest.mark.parametrize("role", ["web", *BUSY])
def test_kill_9_of_a_process_mid_work(running: Deployment, role: str) -> None:
    def inject(running: Deployment, flowing: Traffic) -> str:
        refused = flowing.refused
        if role == "web":
            evidence = "orders arriving"
        else:
            what, busy = BUSY[role]
            evidence = f"{poll(running, lambda: busy(running), what)} {what}"
        pid = running.procs[role].pid
        if role == "worker":  # the main process alone: its pool children are orphaned
            os.kill(pid, signal.SIGKILL)
            running.procs[role].popen.wait(timeout=10)
            evidence += f", {len(pool_children(pid))} pool children left orphaned"
        running.kill(role)  # and what is left of its process group, as a container's end would
        if role == "web":  # the clients notice: their requests are refused, then retried
            running.wait_until(lambda: flowing.refused > refused, "a request refused")
        running.start(role)
        return f"kill -9 {role} (pid {pid}) with {evidence}"

    scenario(running, f"kill-9-{role}", inject, seed=len(role))


def pool_children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (from /proc, by parent pid, never by name)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def test_kill_9_of_a_worker_pool_child(running: Deployment) -> None:
    def inject(running: Deployment, flowing: Traffic) -> str:
        parent = running.procs["worker"].pid
        poll(running, lambda: sagas_running(running), "sagas running")
        [child, *_] = sorted(poll(running, lambda: pool_children(parent), "the pool's children"))
        before = pool_children(parent)
        os.kill(child, signal.SIGKILL)
        replacements = poll(
            running,
            lambda: pool_children(parent) - before,
            "the worker to replace its child",
        )
        return f"kill -9 worker pool child (pid {child}), replaced by pid {min(replacements)}"

    scenario(running, "kill-9-worker-child", inject, seed=41)


def test_the_relay_killed_between_the_broker_ack_and_marking_its_rows(
    running: Deployment,
) -> None:
    """Rows the broker has acknowledged but the outbox does not say so: published again
    by the restarted relay, and dropped by every consumer as duplicates."""

    def inject(running: Deployment, flowing: Traffic) -> str:
        with psycopg.connect(running.database_url) as holder:
            # Lock unpublished rows: the relay reads and publishes them, then waits to mark.
            locked: list[tuple[int]] = []
            while not locked:
                holder.rollback()
                locked = holder.execute(
                    "SELECT id FROM outbox WHERE published_at IS NULL FOR UPDATE"
                ).fetchall()
            poll(
                running,
                lambda: count(
                    running,
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                    " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE outbox%%'",
                    [running.fleet.app_prefix + "relay"],
                ),
                "the relay waiting to mark rows it has published",
            )
            running.kill("relay")
            holder.rollback()
        running.start("relay")
        return f"relay killed blocked marking published rows ({len(locked)} locked)"

    scenario(running, "relay-killed-after-ack", inject, seed=7)


def relay_leader(running: Deployment) -> str:
    """The application name of the connection holding the relay's leader lock."""
    rows = running.query(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s",
        [LEADER_LOCK_KEY >> 32, LEADER_LOCK_KEY & 0xFFFFFFFF],
    )
    return str(rows[0][0]) if rows else ""


def test_a_standby_relay_takes_over_when_the_leader_is_killed(running: Deployment) -> None:
    prefix = running.fleet.app_prefix

    def inject(running: Deployment, flowing: Traffic) -> str:
        standby = running.fleet.manage("relay-standby", "relay_outbox")
        running.wait_until(
            lambda: "relaying the outbox" in standby.log.read_text(), "the standby started"
        )
        assert relay_leader(running) == prefix + "relay", "the first relay leads"
        running.kill("relay")
        began = time.monotonic()
        poll(running, lambda: relay_leader(running) == prefix + "relay-standby", "a takeover")
        takeover = time.monotonic() - began
        running.start("relay")  # the replacement waits as the standby now
        running.fleet.stop(standby)
        poll(running, lambda: relay_leader(running) == prefix + "relay", "the lead handed back")
        return f"leader relay killed, the standby took the lock in {takeover:.1f} s"

    scenario(running, "standby-relay-takeover", inject, seed=8)


def test_a_standby_relay_takes_over_from_a_leader_that_hangs(running: Deployment) -> None:
    """SIGSTOP, as a process frozen or hung holding the leader's lock: its connection
    stays open, so only PostgreSQL ending its silent session (RELAY_LEADER_IDLE_SECONDS,
    3 s here) frees the lock. Woken later, the old leader must find itself a standby."""
    prefix = running.fleet.app_prefix

    def inject(running: Deployment, flowing: Traffic) -> str:
        running.stop("relay")
        hangs = running.fleet.manage(
            "relay-hangs", "relay_outbox", extra_env={"RELAY_LEADER_IDLE_SECONDS": "3"}
        )
        poll(running, lambda: relay_leader(running) == prefix + "relay-hangs", "it to lead")
        running.start("relay")  # the standby
        flowing.wait_for_orders(2)
        os.kill(hangs.pid, signal.SIGSTOP)
        try:
            began = time.monotonic()
            poll(running, lambda: relay_leader(running) == prefix + "relay", "a takeover")
            takeover = time.monotonic() - began
            flowing.wait_for_orders(2)
        finally:
            os.kill(hangs.pid, signal.SIGCONT)
        running.wait_until(
            lambda: "outbox relay batch failed" in hangs.log.read_text(errors="replace"),
            "the woken relay to find its session gone",
        )
        flowing.wait_for_orders(2)
        assert relay_leader(running) == prefix + "relay", "the woken relay stands by"
        running.fleet.stop(hangs)
        return f"leader relay stopped (SIGSTOP), the standby took the lock in {takeover:.1f} s"

    scenario(running, "hung-relay-takeover", inject, seed=18)


def test_the_kafka_brokers_down(running: Deployment) -> None:
    def inject(running: Deployment, flowing: Traffic) -> str:
        running.kafka.take_down()
        began = time.monotonic()
        peak = 0

        def outage_over() -> bool:
            nonlocal peak
            peak = max(peak, unpublished(running))
            return time.monotonic() - began >= OUTAGE and peak > 0

        running.wait_until(outage_over, "the outage held with messages waiting", OUTAGE + 60)
        running.kafka.bring_up()
        return f"Kafka down {OUTAGE:.0f} s, outbox backlog peaked at {peak}"

    scenario(running, "kafka-down", inject, seed=9)


def test_kafka_answers_produce_requests_with_errors(running: Deployment) -> None:
    errors = [REQUEST_TIMED_OUT, NOT_LEADER_OR_FOLLOWER] * 10

    def inject(running: Deployment, flowing: Traffic) -> str:
        running.kafka.fail_produce_requests(errors)
        sent = poll(
            running,
            lambda: (n := running.kafka.produce_requests()) > len(errors) and n,
            "the errors met by produce requests",
        )
        return (
            f"{len(errors)} produce requests answered REQUEST_TIMED_OUT or "
            f"NOT_LEADER_OR_FOLLOWER ({sent} sent)"
        )

    scenario(running, "produce-errors", inject, seed=10)


def test_a_consumer_group_rebalance(running: Deployment) -> None:
    def inject(running: Deployment, flowing: Traffic) -> str:
        second = running.fleet.manage("consumer-orders-2", "consume", "orders")

        def assigned() -> str:
            for line in second.log.read_text().splitlines():
                message = json.loads(line)["message"] if line.startswith("{") else line
                took = message.removeprefix("consumer orders assigned ")
                if took != message and took != "nothing":
                    return took
            return ""

        took = poll(running, assigned, "the second member assigned partitions")
        running.fleet.stop(second)
        return f"a second orders consumer joined, took {took} and left"

    scenario(running, "rebalance", inject, seed=11)


def terminate_connections(running: Deployment) -> int:
    """pg_terminate_backend on every connection of the deployment's processes."""
    return count(
        running,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name LIKE %s",
        [running.fleet.app_prefix + "%"],
    )


def test_every_database_connection_killed_three_times(running: Deployment) -> None:
    def inject(running: Deployment, flowing: Traffic) -> str:
        killed = []
        for _ in range(3):
            killed.append(terminate_connections(running))
            flowing.wait_for_orders(2)
        assert all(killed), killed
        return f"pg_terminate_backend of all connections x3: {'+'.join(map(str, killed))}"

    scenario(running, "pg-terminate-x3", inject, seed=12)


def test_the_database_refuses_every_connection_for_a_while(running: Deployment) -> None:
    """Not a killed connection: no connection opens at all for OUTAGE seconds, longer
    than a consumer's or a command's retries last. Nothing may be dead-lettered for it
    (a command's retries for the outage are not its attempts), nor an order left
    pending."""
    database = psycopg.conninfo.conninfo_to_dict(running.database_url)["dbname"]
    [(last_letter,)] = running.query("SELECT coalesce(max(id), 0) FROM dead_letters")

    def inject(running: Deployment, flowing: Traffic) -> str:
        # Commands pile up while the worker is stopped, so that it takes them (and runs
        # them, and retries them) while no connection opens.
        running.stop("worker")
        running.wait_until(lambda: running.commands_queued() >= 8, "commands waiting")
        with psycopg.connect(running.database_url, dbname="postgres", autocommit=True) as admin:
            name = psycopg.sql.Identifier(database)
            admin.execute(psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
            try:
                [(killed,)] = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s AND application_name LIKE %s",
                    [database, running.fleet.app_prefix + "%"],
                ).fetchall()
                held = running.commands_queued()
                running.start("worker")
                began = time.monotonic()
                running.wait_until(lambda: time.monotonic() - began >= OUTAGE, "the outage")
            finally:
                admin.execute(
                    psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name)
                )
        return (
            f"the database refused connections for {OUTAGE:.0f} s ({killed} terminated,"
            f" {held} commands queued for the worker)"
        )

    scenario(running, "database-away", inject, seed=16)
    # The retries a worker holds until their countdown ends are no part of settling.
    running.wait_until(lambda: running.commands_queued() == 0, "every command run")
    worker_log = running.procs["worker"].log.read_text(errors="replace")
    assert "retry: Retry in" in worker_log, "commands met the outage and were retried for it"
    # A charge on `tok_timeout` (the fake gateway never answers it) is dead-lettered when
    # its retries run out before the saga's compensation voids the payment, outage or not.
    letters = running.query(
        "SELECT source, message_id, attempts, error FROM dead_letters"
        " WHERE id > %s AND error NOT LIKE 'GatewayTimeout:%%' ORDER BY id",
        [last_letter],
    )
    assert letters == [], "dead-lettered for the outage"


def test_redis_flushed(running: Deployment) -> None:
    """Redis holds only what may be lost: the order rate's counters (off here), the live
    updates' pub/sub, and Idempotency-Key locks where the database has no advisory locks
    (on PostgreSQL it does). Flushed twenty times under traffic."""
    client = redis.Redis.from_url(running.procs["web"].env["REDIS_URL"])
    flushed: list[int] = []

    def flush() -> bool:
        with client.pipeline(transaction=True) as atomically:
            keys, _ = atomically.dbsize().flushdb().execute()
        flushed.append(int(keys))
        return len(flushed) >= 20

    def inject(running: Deployment, flowing: Traffic) -> str:
        running.wait_until(flush, "twenty flushes")
        return f"Redis flushed {len(flushed)} times under traffic ({sum(flushed)} keys dropped)"

    scenario(running, "redis-flushed", inject, seed=13)


POISON = {
    "NUL bytes": b"\x00\xff" * 32,
    "invalid UTF-8": b'{"id": "\xc3\x28\xa0\xa1"}',
    "JSON without headers": b'{"id": "not-a-cloudevent", "type": "orders.OrderPlaced"}',
    "oversized": b"x" * 900_000,
}


def dead_lettered(running: Deployment) -> int:
    return count(running, "SELECT count(*) FROM dead_letters WHERE source LIKE 'consumer:%%'")


def test_poison_messages_on_every_topic(running: Deployment) -> None:
    def inject(running: Deployment, flowing: Traffic) -> str:
        before = dead_lettered(running)
        producer = Producer(
            {"bootstrap.servers": running.kafka.bootstrap_servers, "message.max.bytes": 1_000_000}
        )
        for topic in TOPICS:
            for partition in range(3):
                for body in POISON.values():
                    producer.produce(topic, body, partition=partition)
        assert producer.flush(30) == 0, "the poison was not produced"
        sent = len(TOPICS) * 3 * len(POISON)
        # The saga's consumer reads every topic: at least one letter per message.
        letters = poll(
            running,
            lambda: (n := dead_lettered(running) - before) >= sent and n,
            "every poison message dead-lettered",
        )
        return f"{sent} poison messages ({', '.join(POISON)}) -> {letters} dead letters"

    scenario(running, "poison", inject, seed=14)


def test_a_projection_rebuild_while_writes_continue(running: Deployment) -> None:
    def inject(running: Deployment, flowing: Traffic) -> str:
        output = running.fleet.run(
            "rebuild", "rebuild_projection", "order_summary", "--no-progress"
        )
        return f"rebuilt order_summary under writes: {output.strip().splitlines()[-1]}"

    scenario(running, "rebuild-under-writes", inject, seed=15)
