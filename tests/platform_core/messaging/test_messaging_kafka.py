"""The messaging backbone against a Kafka protocol peer (librdkafka's mock cluster)."""

from __future__ import annotations

import base64
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from inventory.commands import RegisterProduct, RestockProduct
from inventory.events import TOPIC as INVENTORY_TOPIC
from platform_core.eventsourcing.errors import InvalidCommand
from platform_core.eventsourcing.messages import MessageContext, current_context
from platform_core.eventsourcing.retry import RetryPolicy
from platform_core.messaging import dead_letters
from platform_core.messaging.consumers import ConsumerGroup, Outcome
from platform_core.messaging.envelope import Envelope, Outgoing, PublishReport
from platform_core.messaging.kafka import KafkaPublisher
from platform_core.messaging.local import LocalPublisher
from platform_core.messaging.outbox import envelope_of
from platform_core.messaging.relay import OutboxRelay
from platform_core.models import DeadLetter, OutboxMessage
from platform_core.testing.kafka_mock import MockKafkaCluster
from tests.platform_core.messaging.messaging_support import (
    effects,
    effects_table,
    quiet,
    record_effect,
    running_consumer,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)
STOCK_CHANGED = "inventory.stock-level-changed.v1"
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)


@pytest.fixture
def cluster():
    with MockKafkaCluster(brokers=3) as mock:
        mock.create_topic(INVENTORY_TOPIC, partitions=3)
        yield mock


@pytest.fixture
def kafka(cluster) -> dict[str, Any]:
    return {"bootstrap.servers": cluster.bootstrap_servers}


@pytest.fixture
def table():
    with effects_table():
        yield


def register(bus, count: int, prefix: str = "SKU") -> list[str]:
    skus = [f"{prefix}-{n}" for n in range(count)]
    for sku in skus:
        bus.handle(RegisterProduct(sku=sku, name=sku, price=Decimal("1.00"), initial_stock=1))
    return skus


def effects_group(handler=record_effect, **options) -> ConsumerGroup:
    return ConsumerGroup("effects", {STOCK_CHANGED: handler}, topics=[INVENTORY_TOPIC], **options)


def read_topic(kafka: dict[str, Any], expected: int) -> list[Any]:
    consumer = Consumer(quiet({**kafka, "group.id": "reader", "auto.offset.reset": "earliest"}))
    consumer.subscribe([INVENTORY_TOPIC])
    messages: list[Any] = []
    wait_until(
        lambda: (
            messages.extend(m for m in consumer.consume(500, 0.2) if not m.error())
            or len(messages) >= expected
        ),
        what=f"{expected} messages",
    )
    consumer.close()
    return messages


def test_integration_events_commit_with_the_domain_events_or_not_at_all(platform_runtime):
    bus = platform_runtime.bus
    context = MessageContext(correlation_id="corr-outbox")
    bus.handle(
        RegisterProduct(sku="TEA", name="Tea", price=Decimal("2.50"), initial_stock=3),
        context=context,
    )
    row = OutboxMessage.objects.get()
    assert (row.topic, row.message_key, row.event_type) == (INVENTORY_TOPIC, "TEA", STOCK_CHANGED)
    assert row.headers["correlationid"] == "corr-outbox"
    head = platform_runtime.store.head()

    with pytest.raises(InvalidCommand):
        bus.handle(RestockProduct(sku="TEA", quantity=0))
    with pytest.raises(RuntimeError):
        _restock_then_fail(bus)

    assert OutboxMessage.objects.count() == 1
    assert platform_runtime.store.head() == head


def _restock_then_fail(bus) -> None:
    with transaction.atomic():
        bus.handle(RestockProduct(sku="TEA", quantity=5))
        raise RuntimeError("the caller's transaction fails after the command")


def test_the_relay_publishes_cloudevents_keyed_by_aggregate_in_order(platform_runtime, kafka):
    bus = platform_runtime.bus
    skus = register(bus, 3)
    for quantity in range(1, 6):
        for sku in skus:
            bus.handle(RestockProduct(sku=sku, quantity=quantity))

    relay = OutboxRelay(KafkaPublisher(quiet(kafka)))
    assert relay.drain() == 18
    assert relay.backlog() == 0

    messages = read_topic(kafka, 18)
    ids = set(OutboxMessage.objects.values_list("message_id", flat=True))
    levels: dict[str, list[int]] = {}
    for message in messages:
        envelope = Envelope.from_kafka(
            message.topic(), message.key(), message.value(), message.headers()
        )
        headers = dict(message.headers())
        assert headers["ce_specversion"] == b"1.0"
        assert headers["content-type"] == b"application/json"
        assert (envelope.type, envelope.source) == (STOCK_CHANGED, "/inventory")
        assert envelope.subject == envelope.key == message.key().decode()
        assert any(str(i) == envelope.id for i in ids)
        levels.setdefault(envelope.key, []).append(int(envelope.data.split(b'"on_hand":')[1][:-1]))
    assert {sku: sorted(v) for sku, v in levels.items()} == levels, "one key's events in order"
    assert all(len(v) == 6 for v in levels.values())


@pytest.mark.postgres
def test_a_consumer_group_applies_each_message_once_in_its_correlation(
    platform_runtime, kafka, table
):
    seen: list[tuple[str | None, str | None]] = []

    def handler(envelope: Envelope) -> None:
        context = current_context()
        seen.append((context.correlation_id, context.causation_id))
        record_effect(envelope)

    register(platform_runtime.bus, 1, prefix="FIRST")
    platform_runtime.bus.handle(
        RegisterProduct(sku="CORR", name="c", price=Decimal("1.00"), initial_stock=1),
        context=MessageContext(correlation_id="corr-end-to-end"),
    )
    register(platform_runtime.bus, 38)
    OutboxRelay(KafkaPublisher(quiet(kafka))).drain()

    with running_consumer(effects_group(handler), kafka):
        wait_until(lambda: len(effects()) == 40, what="40 effects")

    assert sorted(effects()) == sorted(
        str(i) for i in OutboxMessage.objects.values_list("message_id", flat=True)
    )
    corr_row = OutboxMessage.objects.get(message_key="CORR")
    assert ("corr-end-to-end", str(corr_row.message_id)) in seen


@pytest.mark.postgres
def test_every_message_delivered_twice_has_one_effect(platform_runtime, kafka, table):
    register(platform_runtime.bus, 30)
    publisher = KafkaPublisher(quiet(kafka))
    batch = [Outgoing(row_id=r.id, envelope=envelope_of(r)) for r in OutboxMessage.objects.all()]
    assert len(publisher.publish(batch).delivered) == 30
    assert len(publisher.publish(batch).delivered) == 30

    with running_consumer(effects_group(), kafka):
        wait_until(lambda: len(effects()) >= 30, what="30 effects")
        read_topic(kafka, 60)  # the duplicates are on the topic too...
        wait_until(lambda: _committed(kafka, "effects") == 60, what="all 60 consumed")
    assert len(effects()) == 30  # ...but had no second effect


@pytest.mark.postgres
def test_nothing_is_lost_while_every_broker_is_down(platform_runtime, cluster, kafka, table):
    register(platform_runtime.bus, 25)
    cluster.take_down()
    relay = OutboxRelay(
        KafkaPublisher(quiet({**kafka, "message.timeout.ms": 1500})),
        backoff=RetryPolicy(max_attempts=10**6, base_delay=0.05, max_delay=0.2),
    )
    stop, wake = threading.Event(), threading.Event()
    worker = threading.Thread(target=_relay_thread, args=(relay, stop, wake))
    worker.start()
    try:
        wait_until(
            lambda: OutboxMessage.objects.filter(attempts__gte=2).count() == 25,
            what="two failed attempts on every row",
        )
        assert relay.backlog() == 25
        assert "Local: Message timed out" in OutboxMessage.objects.first().last_error
        cluster.bring_up()
        wait_until(lambda: relay.backlog() == 0, what="the backlog to drain after recovery")
    finally:
        stop.set()
        worker.join(timeout=30)

    with running_consumer(effects_group(), kafka):
        wait_until(lambda: len(effects()) == 25, what="25 effects")
    assert len(set(effects())) == 25


@pytest.mark.postgres
def test_a_poison_message_is_dead_lettered_while_the_rest_flow_on(platform_runtime, kafka, table):
    fixed = threading.Event()

    def handler(envelope: Envelope) -> None:
        if b"POISON" in envelope.data and not fixed.is_set():
            raise ValueError("cannot handle this stock level yet")
        record_effect(envelope)

    register(platform_runtime.bus, 5, prefix="A")
    register(platform_runtime.bus, 1, prefix="POISON")
    register(platform_runtime.bus, 5, prefix="B")
    OutboxRelay(KafkaPublisher(quiet(kafka))).drain()
    group = effects_group(handler, retry=FAST_RETRY)

    with running_consumer(group, kafka):
        wait_until(lambda: len(effects()) == 10 and DeadLetter.objects.exists(), what="10 + 1")

    letter = DeadLetter.objects.get()
    assert (letter.source, letter.attempts, letter.destination) == (
        "consumer:effects",
        3,
        INVENTORY_TOPIC,
    )
    assert "ValueError: cannot handle this stock level yet" in letter.error
    assert "in handler" in letter.traceback
    assert b"POISON" not in b"".join(e.encode() for e in effects())

    fixed.set()
    assert dead_letters.retry(letter, {group.source: group.redeliver})
    assert dead_letters.retry(letter, {group.source: group.redeliver})  # a second retry...
    assert len(effects()) == 11  # ...has no second effect
    assert DeadLetter.objects.get().status == DeadLetter.Status.RETRIED


class _Killed(BaseException):
    """Stands for the relay process dying right after the broker acknowledged."""


class _PublishThenDie:
    def __init__(self, inner: KafkaPublisher) -> None:
        self.inner = inner

    def publish(self, batch: list[Outgoing]) -> PublishReport:
        self.inner.publish(batch)
        raise _Killed

    def close(self) -> None:
        self.inner.close()


@pytest.mark.postgres
def test_a_relay_killed_between_publishing_and_marking_loses_nothing(
    platform_runtime, kafka, table
):
    register(platform_runtime.bus, 20)
    with pytest.raises(_Killed):
        OutboxRelay(_PublishThenDie(KafkaPublisher(quiet(kafka)))).relay_once()
    assert OutboxMessage.objects.filter(published_at__isnull=True).count() == 20

    assert OutboxRelay(KafkaPublisher(quiet(kafka))).drain() == 20  # the restarted relay

    with running_consumer(effects_group(), kafka):
        wait_until(lambda: _committed(kafka, "effects") == 40, what="both copies consumed")
    assert sorted(effects()) == sorted(
        str(i) for i in OutboxMessage.objects.values_list("message_id", flat=True)
    )


class _Recording:
    def __init__(self, inner: KafkaPublisher, log: list[tuple[str, int]], name: str) -> None:
        self.inner, self.log, self.name = inner, log, name

    def publish(self, batch: list[Outgoing]) -> PublishReport:
        report = self.inner.publish(batch)
        self.log.extend((self.name, row_id) for row_id in report.delivered)
        return report

    def close(self) -> None:
        self.inner.close()


@pytest.mark.postgres
def test_two_relays_at_once_publish_every_row_and_only_the_leader_publishes(
    platform_runtime, kafka
):
    log: list[tuple[str, int]] = []
    stop, wake = threading.Event(), threading.Event()
    relays = [
        OutboxRelay(_Recording(KafkaPublisher(quiet(kafka)), log, name), batch_size=7)
        for name in ("first", "second")
    ]
    workers = [threading.Thread(target=_relay_thread, args=(relay, stop, wake)) for relay in relays]
    for worker in workers:
        worker.start()
    try:
        register(platform_runtime.bus, 60)
        wait_until(lambda: relays[0].backlog() == 0, what="the outbox to drain")
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    published = {row_id for _, row_id in log}
    assert published == set(OutboxMessage.objects.values_list("id", flat=True))
    assert len({name for name, _ in log}) == 1


@pytest.mark.postgres
def test_a_stopped_consumer_commits_what_it_processed(platform_runtime, kafka, table):
    register(platform_runtime.bus, 20)
    OutboxRelay(KafkaPublisher(quiet(kafka))).drain()
    with running_consumer(effects_group(), kafka):
        wait_until(lambda: len(effects()) == 20, what="20 effects")
    assert _committed(kafka, "effects") == 20


def test_without_kafka_the_outbox_is_relayed_to_in_process_subscribers(platform_runtime, table):
    register(platform_runtime.bus, 4)
    assert OutboxRelay(LocalPublisher([effects_group()])).drain() == 4
    assert len(effects()) == 4
    assert OutboxRelay(LocalPublisher([effects_group()])).drain() == 0


def _relay_thread(
    relay: OutboxRelay, stop: threading.Event, wake: threading.Event, idle_seconds: float = 0.05
) -> None:
    try:
        relay.run_forever(stop, wake, idle_seconds=idle_seconds)
    finally:
        connections.close_all()


@pytest.mark.postgres
def test_a_standby_relay_takes_over_soon_after_the_leader_goes(platform_runtime, kafka):
    """Within a second or so, not after the relays' poll (60 s here). The commit of new
    rows wakes the relays, as NOTIFY does when deployed: a standby that took over before
    the rows were written would otherwise sleep out its poll."""
    log: list[tuple[str, int]] = []
    # A wake-up each: a relay clears its own before each round, and a shared one cleared
    # by the standby could swallow the wake-up that tells the leader to stop.
    wakes = {name: threading.Event() for name in ("leader", "standby")}
    stops = {name: threading.Event() for name in wakes}
    relays = {
        name: OutboxRelay(_Recording(KafkaPublisher(quiet(kafka)), log, name)) for name in stops
    }
    threads = {}
    for name in ("leader", "standby"):  # the first to start leads
        args = (relays[name], stops[name], wakes[name], 60.0)
        threads[name] = threading.Thread(target=_relay_thread, args=args)
        threads[name].start()
        if name == "leader":
            register(platform_runtime.bus, 1, prefix="FIRST")
            wakes[name].set()
            wait_until(lambda: relays["leader"].backlog() == 0, what="the leader to publish")
    try:
        stops["leader"].set()
        wakes["leader"].set()
        threads["leader"].join(timeout=30)
        assert not threads["leader"].is_alive()
        register(platform_runtime.bus, 3, prefix="LATER")
        wakes["standby"].set()
        wait_until(lambda: relays["standby"].backlog() == 0, seconds=10, what="the standby")
    finally:
        for name in stops:
            stops[name].set()
            wakes[name].set()
        for thread in threads.values():
            thread.join(timeout=30)
    assert {name for name, _ in log} == {"leader", "standby"}


class _Hanging(_Recording):
    """A publisher whose broker client hangs on its first batch until `release` is set."""

    def __init__(self, *args: Any, release: threading.Event) -> None:
        super().__init__(*args)
        self.release, self.hung = release, threading.Event()

    def publish(self, batch: list[Outgoing]) -> PublishReport:
        if not self.hung.is_set():
            self.hung.set()
            self.release.wait(60)
        return super().publish(batch)


@pytest.mark.postgres
def test_a_leader_that_hangs_holding_the_lock_loses_it_to_the_standby(platform_runtime, kafka):
    """A leader that hangs (a stopped process, a broker client that never returns) keeps
    its connection, hence the lock: PostgreSQL ends its session once it has said nothing
    for `leader_idle_seconds`, and the standby takes over. Woken, the old leader finds
    its session gone and waits as the standby."""
    log: list[tuple[str, int]] = []
    release = threading.Event()
    hanging = _Hanging(KafkaPublisher(quiet(kafka)), log, "hung", release=release)
    relays = {
        "hung": OutboxRelay(hanging, leader_idle_seconds=1),
        "standby": OutboxRelay(_Recording(KafkaPublisher(quiet(kafka)), log, "standby")),
    }
    stops = {name: threading.Event() for name in relays}
    wakes = {name: threading.Event() for name in relays}
    threads = {
        name: threading.Thread(target=_relay_thread, args=(relays[name], stops[name], wakes[name]))
        for name in relays
    }
    threads["hung"].start()
    register(platform_runtime.bus, 3, prefix="FIRST")
    wakes["hung"].set()
    try:
        wait_until(hanging.hung.is_set, what="the leader to hang publishing")
        threads["standby"].start()
        wait_until(lambda: relays["standby"].backlog() == 0, what="the standby to take over")
        release.set()
        register(platform_runtime.bus, 3, prefix="LATER")
        for wake in wakes.values():
            wake.set()
        wait_until(lambda: len({row for _, row in log}) == 6, what="the later rows")
    finally:
        release.set()
        for name in relays:
            stops[name].set()
            wakes[name].set()
        for thread in threads.values():
            thread.join(timeout=30)
    by_relay = {name: {row for who, row in log if who == name} for name in relays}
    assert len(by_relay["standby"]) == 6, "the standby published every row"
    assert len(by_relay["hung"]) <= 3, "the old leader published no more than its hung batch"


def _committed(kafka: dict[str, Any], group: str) -> int:
    consumer = Consumer(quiet({**kafka, "group.id": group}))
    try:
        partitions = [TopicPartition(INVENTORY_TOPIC, p) for p in range(3)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10))
    finally:
        consumer.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("value", "headers"),
    [
        (b"\x00\xff\xfe garbage", None),  # NUL and invalid UTF-8, no headers at all
        (b'{"ok": true}', [("ce_id", b"x\x00y"), ("ce_type", b"\xff")]),  # NUL in a header
        (b"\x00" * 900_000, [("ce_specversion", b"1.0")]),  # large, half a CloudEvent
    ],
    ids=["bytes-no-headers", "bad-headers", "large"],
)
def test_bytes_that_are_no_cloudevent_are_dead_lettered_and_the_partition_goes_on(
    platform_runtime, cluster, kafka, table, value, headers
):
    producer = Producer(quiet(kafka))
    producer.produce(INVENTORY_TOPIC, key=b"A-0", value=value, headers=headers, partition=0)
    producer.flush(10)
    register(platform_runtime.bus, 3, prefix="A")
    OutboxRelay(KafkaPublisher(quiet(kafka))).drain()

    with running_consumer(effects_group(retry=FAST_RETRY), kafka):
        wait_until(lambda: len(effects()) == 3 and DeadLetter.objects.exists(), what="3 + 1")

    letter = DeadLetter.objects.get()
    assert letter.source == "consumer:effects"
    assert letter.message_id.startswith(f"{INVENTORY_TOPIC}/0/")
    if letter.headers.get("payload_encoding") == "base64":
        assert base64.b64decode(letter.payload) == value  # the raw bytes kept
    else:
        assert letter.payload.encode() == value
    with pytest.raises(ValueError, match="not a CloudEvent"):
        dead_letters.envelope_of(letter)  # what a retry reads, and fails on again


@pytest.mark.postgres
def test_a_consumer_whose_connection_is_killed_reconnects_and_applies_the_message(table):
    killed: list[int] = []

    def handler(envelope: Envelope) -> None:
        if not killed:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                killed.append(cursor.fetchone()[0])
            with connections["default"].cursor() as cursor:  # the handler's own session dies
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        record_effect(envelope)

    group = effects_group(handler, retry=FAST_RETRY, sleep=lambda _: None)
    envelope = Envelope(
        id=str(uuid.uuid4()), type=STOCK_CHANGED, source="/inventory", time=timezone.now()
    )

    assert group.handle(envelope) == Outcome.PROCESSED
    assert killed, "the fault happened: the first attempt's connection was terminated"
    assert effects() == [envelope.id]
    assert not DeadLetter.objects.exists()


@pytest.mark.postgres
def test_a_database_outage_counts_no_attempt_and_dead_letters_nothing(table, monkeypatch):
    """While no connection opens, a failing message waits for the database instead of
    spending its attempts: an outage longer than the retries used to dead-letter good
    messages. Here the only attempt allowed fails twice with the database away."""
    outages = iter([False, False])
    monkeypatch.setattr(
        "platform_core.messaging.consumers.database_reachable", lambda: next(outages, True)
    )
    calls: list[int] = []

    def handler(envelope: Envelope) -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise OperationalError("the connection is lost")
        record_effect(envelope)

    waits: list[float] = []
    group = effects_group(
        handler, retry=RetryPolicy(max_attempts=1, base_delay=0.001), sleep=waits.append
    )
    envelope = Envelope(
        id=str(uuid.uuid4()), type=STOCK_CHANGED, source="/inventory", time=timezone.now()
    )

    assert group.handle(envelope) == Outcome.PROCESSED
    assert (len(calls), len(waits), effects()) == (3, 2, [envelope.id])
    assert not DeadLetter.objects.exists()


@pytest.mark.postgres
def test_a_message_whose_id_no_column_holds_is_still_dead_lettered(table):
    """An id of 300 characters or with a NUL used to fail the store for ever, and with it
    the consumer; the letter keeps a bounded, NUL-free id, distinct per original."""
    group = effects_group(lambda envelope: 1 / 0, retry=FAST_RETRY, sleep=lambda _: None)
    ids = ["x" * 300 + "a", "x" * 300 + "b", "id-with-\x00-nul"]
    for message_id in ids:
        envelope = Envelope(
            id=message_id, type=STOCK_CHANGED, source="/inventory", time=timezone.now()
        )
        assert group.handle(envelope) == Outcome.DEAD_LETTERED

    stored = list(DeadLetter.objects.order_by("id").values_list("message_id", flat=True))
    assert len(set(stored)) == 3
    assert all(len(message_id) <= 255 and "\x00" not in message_id for message_id in stored)
