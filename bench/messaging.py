"""Messaging benchmark on PostgreSQL and a Kafka protocol peer: the outbox relay, the
commit-to-ack latency and the inbox-deduplicated consumer, each beside a bare
confluent-kafka client on the same broker.

    .venv/bin/python bench/messaging.py            # default size, a few minutes
    .venv/bin/python bench/messaging.py --quick    # smoke size for CI, under a minute

It (re)creates the database named by --database-url (default $BENCH_DATABASE_URL, else
postgres://postgres@127.0.0.1:5432/bench_messaging; the name must start with "bench_"),
migrates it, and starts librdkafka's mock cluster (one broker, real Kafka protocol on
loopback) in a child process, so the broker's CPU is not counted in this one. Then:

  relay     N outbox rows, bulk-inserted beforehand (not timed), to acknowledged messages
            by OutboxRelay.drain() + KafkaPublisher; beside a bare Producer with the same
            settings (idempotent, acks=all, linger 5 ms) publishing the same N keys,
            payloads and CloudEvents headers, prepared beforehand, then one flush.
  latency   one outbox row per transaction, committed at a steady rate while a relay runs
            run_forever() in a thread, woken in-process after each commit; the time from
            COMMIT returning to the publisher's report of its acknowledgement. Beside it a
            bare Producer's produce-to-acknowledgement time (produce + flush) at that rate.
  consumer  N messages on a topic, read by KafkaConsumerRunner with a ConsumerGroup that
            claims each message in the inbox (INSERT ... ON CONFLICT DO NOTHING), once with
            a handler that does nothing more and once with one INSERT per message; beside
            a bare Consumer reading the same N messages. Timed from the first batch
            received to the N-th message processed (group join is not counted).

Each workload runs its contenders once per round, rotating who goes first, for several
rounds; the table shows medians, and a ratio is the median of the per-round ratios. It
prints the table and writes bench/results/messaging.json (metric name -> number).
`--profile` instead profiles one relay drain and one consumer run with cProfile.
See docs/benchmarks.md for what bounds each number.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(Path(__file__).resolve().parent), str(ROOT / "platform"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import psycopg  # noqa: E402
from _common import (  # noqa: E402
    format_number,
    interleaved,
    machine,
    median,
    now_iso,
    paired_ratio,
    recreate_database,
    render_table,
    setup_django,
    write_results,
)

from platform_core.testing.kafka_mock import MockKafkaProcess  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_messaging"
EVENT_TYPE = "inventory.stock-level-changed.v1"
PARTITIONS = 3
KEYS = 1000  # distinct aggregates (message keys) the rows are spread over
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

TARGETS = {  # metric: (comparison, value)
    "relay_msgs_per_s": (">=", 20_000),
    "commit_to_ack_p99_ms": ("<=", 100),
    "consumer_inbox_msgs_per_s": (">=", 5_000),
    "consumer_inbox_write_msgs_per_s": (">=", 5_000),
}


# --------------------------------------------------------------------------- broker process


# --------------------------------------------------------------------------- setup


def envelopes(count: int, topic: str, start: int = 0) -> list[Any]:
    """Integration events shaped like the inventory context's, over KEYS aggregates."""
    from platform_core.messaging.envelope import Envelope

    now = datetime.now(UTC)
    correlation = str(uuid.uuid4())
    result = []
    for n in range(start, start + count):
        sku = f"SKU-{n % KEYS:05d}"
        result.append(
            Envelope(
                id=str(uuid.uuid4()),
                type=EVENT_TYPE,
                source="/inventory",
                time=now,
                subject=sku,
                topic=topic,
                key=sku,
                data=json.dumps({"sku": sku, "on_hand": n, "reserved": 0}).encode(),
                correlation_id=correlation,
                causation_id=str(uuid.uuid4()),
            )
        )
    return result


def fill_outbox(url: str, batch: Sequence[Any]) -> None:
    """Empty the outbox, then COPY `batch` into it as unpublished rows, as Outbox.add would."""
    columns = (
        "topic, message_key, message_id, event_type, source, subject, occurred_at, "
        "data, headers, created_at, attempts, last_error"
    )
    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE outbox")
        with conn.cursor().copy(f"COPY outbox ({columns}) FROM STDIN") as copy:
            for e in batch:
                headers = {"correlationid": e.correlation_id, "causationid": e.causation_id}
                copy.write_row(
                    (
                        e.topic,
                        e.key,
                        e.id,
                        e.type,
                        e.source,
                        e.subject,
                        e.time,
                        e.data.decode(),
                        json.dumps(headers),
                        now,
                        0,
                        "",
                    )
                )
        conn.execute("VACUUM ANALYZE outbox")


def kafka_messages(batch: Sequence[Any]) -> list[tuple[str, bytes, bytes, list[Any]]]:
    return [(e.topic, e.key.encode(), e.data, e.kafka_headers()) for e in batch]


def bare_producer(bootstrap: str) -> Any:
    from confluent_kafka import Producer

    from platform_core.messaging.kafka import PRODUCER_DEFAULTS

    return Producer({**PRODUCER_DEFAULTS, "bootstrap.servers": bootstrap})


def produce_all(producer: Any, messages: Sequence[tuple[str, bytes, bytes, list[Any]]]) -> int:
    """The bare baseline: produce everything, then wait for every acknowledgement."""
    acked = 0

    def on_delivery(error: Any, _: Any) -> None:
        nonlocal acked
        if error is None:
            acked += 1

    for topic, key, value, headers in messages:
        while True:
            try:
                producer.produce(
                    topic, key=key, value=value, headers=headers, on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    return acked


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


# --------------------------------------------------------------------------- report


def run(url: str, broker: MockKafkaProcess, sizes: Sizes, only: set[str]) -> dict[str, float]:
    flat: dict[str, float] = {}
    if "relay" in only:
        relay = RelayWorkload(url, broker, sizes)
        rates = interleaved({"relay": relay.relay_rate, "bare": relay.bare_rate}, sizes.rounds)
        relay.close()
        flat["relay_msgs_per_s"] = median(rates["relay"])
        flat["bare_producer_msgs_per_s"] = median(rates["bare"])
        flat["relay_bare_ratio"] = paired_ratio(rates["relay"], rates["bare"])
    if "latency" in only:
        latency = LatencyWorkload(broker, sizes)
        interleaved(
            {"relay": latency.relay_round, "bare": latency.bare_round}, sizes.rounds, warmup=False
        )
        latency.close()
        for name, rounds in (
            ("commit_to_ack", latency.relay_samples),
            ("bare_produce_to_ack", latency.bare_samples),
        ):
            stats = [percentiles(samples) for samples in rounds]
            flat[f"{name}_p50_ms"] = median([s[0] for s in stats])
            flat[f"{name}_p99_ms"] = median([s[1] for s in stats])
            flat[f"{name}_max_ms"] = max(s[2] for s in stats)
    if "consumer" in only:
        consumer = ConsumerWorkload(url, broker, sizes)
        rates = interleaved(
            {"noop": consumer.noop_rate, "write": consumer.write_rate, "bare": consumer.bare_rate},
            sizes.rounds,
        )
        flat["consumer_inbox_msgs_per_s"] = median(rates["noop"])
        flat["consumer_inbox_write_msgs_per_s"] = median(rates["write"])
        flat["bare_consumer_msgs_per_s"] = median(rates["bare"])
        flat["consumer_inbox_bare_ratio"] = paired_ratio(rates["noop"], rates["bare"])
        flat["consumer_inbox_write_bare_ratio"] = paired_ratio(rates["write"], rates["bare"])
    return flat


def verdict(flat: dict[str, float], metric: str) -> str:
    if metric not in flat:
        return "-"
    comparison, target = TARGETS[metric]
    met = flat[metric] >= target if comparison == ">=" else flat[metric] <= target
    return "met" if met else "MISSED"


def report(flat: dict[str, float], sizes: Sizes) -> None:
    n, c = f"{sizes.relay_rows:,}", f"{sizes.consumer_messages:,}"
    lines = [
        (
            f"relay {n} rows (batch {sizes.relay_batch})",
            "msgs/s",
            "relay_msgs_per_s",
            "bare_producer_msgs_per_s",
            "relay_bare_ratio",
        ),
        (
            f"commit-to-ack p50 at {sizes.latency_rate:.0f}/s",
            "ms",
            "commit_to_ack_p50_ms",
            "bare_produce_to_ack_p50_ms",
            None,
        ),
        (
            f"commit-to-ack p99 at {sizes.latency_rate:.0f}/s",
            "ms",
            "commit_to_ack_p99_ms",
            "bare_produce_to_ack_p99_ms",
            None,
        ),
        (
            f"commit-to-ack max at {sizes.latency_rate:.0f}/s",
            "ms",
            "commit_to_ack_max_ms",
            "bare_produce_to_ack_max_ms",
            None,
        ),
        (
            f"consume {c}, inbox claim only",
            "msgs/s",
            "consumer_inbox_msgs_per_s",
            "bare_consumer_msgs_per_s",
            "consumer_inbox_bare_ratio",
        ),
        (
            f"consume {c}, inbox + 1 INSERT each",
            "msgs/s",
            "consumer_inbox_write_msgs_per_s",
            "bare_consumer_msgs_per_s",
            "consumer_inbox_write_bare_ratio",
        ),
    ]
    rows = []
    for label, unit, ours, bare, ratio in lines:
        if ours not in flat:
            continue
        target = TARGETS.get(ours)
        rows.append(
            [
                label,
                unit,
                format_number(flat[ours]),
                format_number(flat.get(bare)),
                format_number(flat[ratio]) if ratio else "-",
                f"{target[0]} {target[1]:,}" if target else "",
                verdict(flat, ours) if target else "",
            ]
        )
    print(render_table(["workload", "unit", "ours", "bare", "ours/bare", "target", "ours"], rows))
    for metric in TARGETS:
        if metric in flat:
            flat[f"{metric}_target_met"] = int(verdict(flat, metric) == "met")
    met = sum(verdict(flat, m) == "met" for m in TARGETS)
    total = sum(m in flat for m in TARGETS)
    print(f"\n{met} of {total} targets met; medians of {sizes.rounds} interleaved rounds.")
    flat.update({"targets_met": met, "targets_total": total})


# --------------------------------------------------------------------------- profile


def profile(url: str, broker: MockKafkaProcess, sizes: Sizes, only: set[str]) -> None:
    """cProfile one relay drain and one consumer run (inbox + write), top functions."""

    def show(title: str, op: Callable[[cProfile.Profile], float]) -> None:
        profiler = cProfile.Profile()
        rate = op(profiler)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(15)
        stats.sort_stats("cumulative").print_stats("platform_core|cimpl|_common|messaging.py", 15)
        print(f"\n=== {title}: {rate:,.0f} msgs/s under the profiler\n{out.getvalue()}")

    if "relay" in only:
        relay = RelayWorkload(url, broker, sizes)
        relay.relay_rate()  # warm up
        show("relay drain", relay.relay_rate)
        relay.close()
    if "consumer" in only:
        consumer = ConsumerWorkload(url, broker, sizes)
        consumer.noop_rate()
        show("consumer, inbox claim only", consumer.noop_rate)
        show("consumer, inbox + 1 INSERT each", consumer.write_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke size (CI, < 60 s)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per workload")
    parser.add_argument("--relay-batch", type=int, help="OutboxRelay batch size")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL),
        help="PostgreSQL database to (re)create; its name must start with bench_",
    )
    parser.add_argument(
        "--only",
        default="relay,latency,consumer",
        help="comma-separated subset of: relay, latency, consumer",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print cProfile of the relay and the consumer instead",
    )
    parser.add_argument("--output", type=Path, help="results file (default bench/results/)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else DEFAULT
    if args.rounds:
        sizes = Sizes(**{**sizes.__dict__, "rounds": args.rounds})
    if args.relay_batch:
        sizes = Sizes(**{**sizes.__dict__, "relay_batch": args.relay_batch})
    only = set(args.only.split(","))
    url = args.database_url

    started = time.perf_counter()
    recreate_database(url)
    setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    broker = MockKafkaProcess()
    try:
        if args.profile:
            profile(url, broker, sizes, only)
            return
        flat = run(url, broker, sizes, only)
    finally:
        broker.close()

    print()
    report(flat, sizes)
    flat.update(
        {
            "rounds": sizes.rounds,
            "quick": int(args.quick),
            "relay_rows": sizes.relay_rows,
            "relay_batch": sizes.relay_batch,
            "latency_rate_per_s": sizes.latency_rate,
            "latency_seconds": sizes.latency_seconds,
            "consumer_messages": sizes.consumer_messages,
            "consumer_batch": sizes.consumer_batch,
            "machine": machine(),  # type: ignore[dict-item]
            "when": now_iso(),  # type: ignore[dict-item]
            "duration_s": round(time.perf_counter() - started, 1),
        }
    )
    flat = {k: round(v, 3) if isinstance(v, float) else v for k, v in flat.items()}
    path = write_results("messaging", flat, args.output)
    print(
        f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
        f" in {flat['duration_s']} s"
    )


if __name__ == "__main__":
    main()
