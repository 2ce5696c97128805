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
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(Path(__file__).resolve().parent), str(ROOT / "platform"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import (  # noqa: E402
    interleaved,
    machine,
    median,
    now_iso,
    paired_ratio,
    recreate_database,
    setup_django,
    write_results,
)
from messaging_report import report  # noqa: E402
from messaging_workloads import (  # noqa: E402
    DEFAULT,
    QUICK,
    ConsumerWorkload,
    LatencyWorkload,
    RelayWorkload,
    Sizes,
    percentiles,
)

from platform_core.testing.kafka_mock import MockKafkaProcess  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_messaging"


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


# --------------------------------------------------------------------------- profile


def profile(url: str, broker: MockKafkaProcess, sizes: Sizes, only: set[str]) -> None:
    """cProfile one relay drain and one consumer run (inbox + write), top functions."""

    def show(title: str, op: Callable[[cProfile.Profile], float]) -> None:
        profiler = cProfile.Profile()
        rate = op(profiler)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(15)
        stats.sort_stats("cumulative").print_stats("platform_core|cimpl|_common|messaging", 15)
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
