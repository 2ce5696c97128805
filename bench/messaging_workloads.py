"""The workloads of messaging.py and their sizes: the relay draining the outbox, the
commit-to-ack latency at a steady rate, and the inbox-deduplicated consumer, each with its
bare confluent-kafka counterpart."""

from __future__ import annotations

import cProfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from messaging_setup import (
    EVENT_TYPE,
    bare_producer,
    envelopes,
    fill_outbox,
    kafka_messages,
    produce_all,
)

from platform_core.testing.kafka_mock import MockKafkaProcess

PARTITIONS = 3
CONSUME_TIMEOUT = 120.0  # seconds: a consumer that has not read N messages by then fails


@dataclass(frozen=True)
class Sizes:
    rounds: int
    relay_rows: int
    relay_batch: int
    latency_rate: float  # commits per second
    latency_seconds: float  # per contender per round
    consumer_messages: int
    consumer_batch: int


QUICK = Sizes(
    rounds=3,
    relay_rows=5_000,
    relay_batch=1000,
    latency_rate=500,
    latency_seconds=2.0,
    consumer_messages=5_000,
    consumer_batch=500,
)
DEFAULT = Sizes(
    rounds=5,
    relay_rows=100_000,
    relay_batch=1000,
    latency_rate=500,
    latency_seconds=10.0,
    consumer_messages=50_000,
    consumer_batch=500,
)


# --------------------------------------------------------------------------- 1. relay


class RelayWorkload:
    def __init__(self, url: str, broker: MockKafkaProcess, sizes: Sizes) -> None:
        from platform_core.messaging.kafka import KafkaPublisher
        from platform_core.messaging.relay import OutboxRelay

        self.url, self.sizes = url, sizes
        relay_topic = broker.create_topic("bench.relay", PARTITIONS)
        bare_topic = broker.create_topic("bench.bare", PARTITIONS)
        self.rows = envelopes(sizes.relay_rows, relay_topic)
        self.bare_messages = kafka_messages(envelopes(sizes.relay_rows, bare_topic))
        self.publisher = KafkaPublisher({"bootstrap.servers": broker.bootstrap_servers})
        self.relay = OutboxRelay(self.publisher, batch_size=sizes.relay_batch)
        self.producer = bare_producer(broker.bootstrap_servers)

    def relay_rate(self, profiler: cProfile.Profile | None = None) -> float:
        fill_outbox(self.url, self.rows)
        start = time.perf_counter()
        published = profiler.runcall(self.relay.drain) if profiler else self.relay.drain()
        elapsed = time.perf_counter() - start
        assert published == len(self.rows), f"relayed {published} of {len(self.rows)}"
        return published / elapsed

    def bare_rate(self) -> float:
        start = time.perf_counter()
        acked = produce_all(self.producer, self.bare_messages)
        elapsed = time.perf_counter() - start
        assert acked == len(self.bare_messages), f"acked {acked} of {len(self.bare_messages)}"
        return acked / elapsed

    def close(self) -> None:
        self.publisher.close()
        self.producer.flush(10)


# --------------------------------------------------------------------------- 2. latency


class StampingPublisher:
    """Wraps the real publisher: when each envelope's acknowledgement was reported."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.acked: dict[str, float] = {}

    def publish(self, batch: Sequence[Any]) -> Any:
        report = self.inner.publish(batch)
        now = time.perf_counter()
        delivered = set(report.delivered)
        for item in batch:
            if item.row_id in delivered:
                self.acked[item.envelope.id] = now
        return report

    def close(self) -> None:
        self.inner.close()


def percentiles(samples_ms: Sequence[float]) -> tuple[float, float, float]:
    """p50, p99 and the maximum (nearest rank)."""
    ordered = sorted(samples_ms)
    p50, p99 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.50, 0.99))
    return p50, p99, ordered[-1]


def steady(rate: float, seconds: float, op: Callable[[int], None]) -> None:
    """Call op(i) on a fixed schedule of `rate` per second (catching up if late)."""
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        op(i)


class LatencyWorkload:
    def __init__(self, broker: MockKafkaProcess, sizes: Sizes) -> None:
        from platform_core.messaging.kafka import KafkaPublisher

        self.sizes = sizes
        self.topic = broker.create_topic("bench.latency", PARTITIONS)
        self.bare_topic = broker.create_topic("bench.latency-bare", PARTITIONS)
        self.publisher = StampingPublisher(
            KafkaPublisher({"bootstrap.servers": broker.bootstrap_servers})
        )
        self.producer = bare_producer(broker.bootstrap_servers)
        self.relay_samples: list[list[float]] = []
        self.bare_samples: list[list[float]] = []

    def relay_round(self) -> float:
        from django.db import connections, transaction

        from platform_core.messaging.outbox import Outbox
        from platform_core.messaging.relay import OutboxRelay

        stop, wake = threading.Event(), threading.Event()
        relay = OutboxRelay(self.publisher, batch_size=self.sizes.relay_batch)

        def run() -> None:
            try:
                relay.run_forever(stop, wake)
            finally:
                connections.close_all()

        worker = threading.Thread(target=run, name="relay")
        worker.start()
        outbox = Outbox(wake)
        count = int(self.sizes.latency_rate * self.sizes.latency_seconds)
        batch = envelopes(count + 20, self.topic)
        committed: dict[str, float] = {}

        def commit(i: int) -> None:
            with transaction.atomic():
                outbox.add([batch[i]])
            committed[batch[i].id] = time.perf_counter()

        for i in range(count, count + 20):  # warm up: the relay takes the lead, connects
            commit(i)
        self._wait_acked([e.id for e in batch[count:]])
        steady(self.sizes.latency_rate, self.sizes.latency_seconds, commit)
        measured = [e.id for e in batch[:count]]
        self._wait_acked(measured)
        stop.set()
        wake.set()
        worker.join(timeout=30)
        samples = [(self.publisher.acked[i] - committed[i]) * 1000 for i in measured]
        self.relay_samples.append(samples)
        return percentiles(samples)[1]

    def _wait_acked(self, ids: Sequence[str], seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not all(i in self.publisher.acked for i in ids):
            if time.monotonic() > deadline:
                raise RuntimeError("the relay did not publish every committed row in time")
            time.sleep(0.01)

    def bare_round(self) -> float:
        count = int(self.sizes.latency_rate * self.sizes.latency_seconds)
        messages = kafka_messages(envelopes(count, self.bare_topic))
        samples: list[float] = []

        def send(i: int) -> None:
            topic, key, value, headers = messages[i]
            start = time.perf_counter()
            self.producer.produce(topic, key=key, value=value, headers=headers)
            self.producer.flush(30)
            samples.append((time.perf_counter() - start) * 1000)

        steady(self.sizes.latency_rate, self.sizes.latency_seconds, send)
        self.bare_samples.append(samples)
        return percentiles(samples)[1]

    def close(self) -> None:
        self.publisher.close()
        self.producer.flush(10)


# --------------------------------------------------------------------------- 3. consumer


def metered_group(
    name: str,
    topic: str,
    handler: Callable[[Any], None],
    expected: int,
    clock: dict[str, float],
    stop: threading.Event,
) -> Any:
    """A ConsumerGroup that notes when its first batch arrived and stops the runner once
    `expected` messages were processed."""
    from platform_core.messaging.consumers import ConsumerGroup

    class Metered(ConsumerGroup):
        handled = 0

        def handle_batch(self, envelopes: Sequence[Any]) -> Any:
            clock.setdefault("first", time.perf_counter())
            outcomes = super().handle_batch(envelopes)
            self.handled += len(envelopes)
            if self.handled >= expected:
                clock["last"] = time.perf_counter()
                stop.set()
            return outcomes

    return Metered(name, {EVENT_TYPE: handler}, topics=[topic])


def record_effect(envelope: Any) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_effects (message_id, sku) VALUES (%s, %s)",
            [envelope.id, envelope.key],
        )


class ConsumerWorkload:
    def __init__(self, url: str, broker: MockKafkaProcess, sizes: Sizes) -> None:
        self.url, self.sizes = url, sizes
        self.bootstrap = broker.bootstrap_servers
        # The mock broker keeps only the newest ~5 MB of each partition, about 13,000 of
        # these messages: enough partitions that none of the N is dropped before it is read.
        partitions = max(PARTITIONS, -(-sizes.consumer_messages // 6_000))
        self.topic = broker.create_topic("bench.consume", partitions)
        producer = bare_producer(self.bootstrap)
        acked = produce_all(
            producer, kafka_messages(envelopes(sizes.consumer_messages, self.topic))
        )
        assert acked == sizes.consumer_messages
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bench_effects (message_id uuid, sku text)")
        self.groups = 0

    def _group_name(self, kind: str) -> str:
        self.groups += 1
        return f"bench-{kind}-{self.groups}"

    def ours(
        self, handler: Callable[[Any], None], profiler: cProfile.Profile | None = None
    ) -> float:
        from platform_core.messaging.kafka import KafkaConsumerRunner

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("TRUNCATE inbox, bench_effects")
            conn.execute("VACUUM ANALYZE inbox")
        stop, clock = threading.Event(), {}
        expected = self.sizes.consumer_messages
        group = metered_group(self._group_name("inbox"), self.topic, handler, expected, clock, stop)
        runner = KafkaConsumerRunner(
            group, {"bootstrap.servers": self.bootstrap}, batch_size=self.sizes.consumer_batch
        )
        watchdog = threading.Timer(CONSUME_TIMEOUT, stop.set)
        watchdog.start()
        try:
            if profiler:
                profiler.runcall(runner.run, stop, poll_seconds=0.1)
            else:
                runner.run(stop, poll_seconds=0.1)
        finally:
            watchdog.cancel()
        if "last" not in clock:
            raise RuntimeError(f"{group.name} did not get all {expected} messages in time")
        return expected / (clock["last"] - clock["first"])

    def noop_rate(self, profiler: cProfile.Profile | None = None) -> float:
        return self.ours(lambda envelope: None, profiler)

    def write_rate(self, profiler: cProfile.Profile | None = None) -> float:
        return self.ours(record_effect, profiler)

    def bare_rate(self) -> float:
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "auto.offset.reset": "earliest",
                "group.id": self._group_name("bare"),
            }
        )
        consumer.subscribe([self.topic])
        expected, seen, first = self.sizes.consumer_messages, 0, None
        deadline = time.monotonic() + CONSUME_TIMEOUT
        try:
            while seen < expected:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the bare consumer got {seen} of {expected} messages")
                messages = consumer.consume(self.sizes.consumer_batch, 0.1)
                if messages and first is None:
                    first = time.perf_counter()
                seen += sum(1 for m in messages if m.error() is None and m.value() is not None)
            return expected / (time.perf_counter() - first)
        finally:
            consumer.close()
