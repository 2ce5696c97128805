"""The transport floor of fulfillment.py: the saga's hops with empty handlers, on the same
Kafka broker, RabbitMQ vhost, Celery pool and client settings as the product, driven by
the same closed loop of clients. What an order costs when nothing but the messages moves
(floor_app.py says what one floor order is)."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

from _common import Fleet, Proc
from confluent_kafka import Consumer, Producer
from floor_app import DONE_TOPIC, EVENTS_TOPIC, QUEUE, STEPS, next_batch
from fulfillment_fleet import BENCH, BIN, ENTRY_POINT
from fulfillment_load import Arrivals, run_clients

from platform_core.messaging.kafka import CONSUMER_DEFAULTS, PRODUCER_DEFAULTS

FLOOR_TOPICS = (EVENTS_TOPIC, DONE_TOPIC)
FLOOR_TIMEOUT = 60.0  # seconds a client waits for one floor order


@dataclass
class FloorRun:
    latencies_ms: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)
    timeouts: int = 0
    started: float = 0.0
    ended: float = 0.0

    @property
    def per_s(self) -> float:
        """Orders a second over the middle 80% of the completions (as the saga phase)."""
        done = sorted(self.done_at)
        low, high = len(done) // 10, len(done) - 1 - len(done) // 10
        return (high - low) / (done[high] - done[low]) if high > low else 0.0


def start_floor(
    fleet: Fleet, args: argparse.Namespace, bootstrap: str, broker_url: str
) -> list[Proc]:
    """The floor's worker (the product's pool and concurrency) and its consumer."""
    env = {
        "FLOOR_BROKER_URL": broker_url,
        "PYTHONPATH": os.pathsep.join([fleet.env["PYTHONPATH"], str(BENCH)]),
    }
    worker = fleet.start(
        "floor worker",
        [
            *(str(BIN / "celery"), "-A", "floor_app:app", "worker", "-Q", QUEUE),
            *("-c", str(args.celery_concurrency), "-P", args.celery_pool),
            *("--without-mingle", "--without-gossip", "-n", f"bench-floor-{os.getpid()}@%h"),
        ],
        env,
    )
    consumer = fleet.start(
        "floor consumer",
        [
            *(sys.executable, str(ENTRY_POINT), "--serve-floor-consumer", bootstrap),
            *("--mock-fetch-wait-ms", str(args.mock_fetch_wait_ms)),
        ],
        env,
    )
    return [worker, consumer]


class Completions(Arrivals):
    """Reads `floor.done` and wakes the client waiting for each order."""

    def __init__(self, bootstrap: str, fetch_wait_ms: int) -> None:
        super().__init__()
        self._consumer = Consumer(
            {
                **CONSUMER_DEFAULTS,
                "bootstrap.servers": bootstrap,
                "group.id": f"floor-bench-{uuid.uuid4().hex}",
                "fetch.wait.max.ms": fetch_wait_ms,
                "enable.auto.commit": False,
            }
        )
        self._consumer.subscribe([DONE_TOPIC])
        self.at: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="floor-done", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in next_batch(self._consumer):
                if message.error():
                    continue
                order = json.loads(message.value())["order"]
                with self._lock:
                    self.at[order] = time.time()
                    self.arrived(order)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


def floor_closed_loop(
    bootstrap: str, fetch_wait_ms: int, clients: int, orders: int, warmup: int
) -> FloorRun:
    """`clients` threads, each: start a floor order, wait until it is done, repeat;
    `warmup` orders first (not counted), then `orders`."""
    producer = Producer({**PRODUCER_DEFAULTS, "bootstrap.servers": bootstrap})
    completions = Completions(bootstrap, fetch_wait_ms)
    stop_polling = threading.Event()

    def poll() -> None:
        while not stop_polling.is_set():
            producer.poll(0.05)

    poller = threading.Thread(target=poll, name="floor-producer", daemon=True)
    poller.start()
    try:
        _loop(producer, completions, clients, warmup, FloorRun())
        return _loop(producer, completions, clients, orders, FloorRun())
    finally:
        stop_polling.set()
        poller.join(timeout=5)
        producer.flush(10)
        completions.close()


def _loop(
    producer: Producer, completions: Completions, clients: int, orders: int, run: FloorRun
) -> FloorRun:
    tickets, lock = itertools.count(), threading.Lock()
    barrier = threading.Barrier(clients)

    def client(_n: int) -> None:
        barrier.wait()
        while next(tickets) < orders:
            order = str(uuid.uuid4())
            done = completions.expect(order)
            sent = time.time()
            producer.produce(EVENTS_TOPIC, key=order, value=json.dumps({"order": order, "step": 0}))
            if not done.wait(FLOOR_TIMEOUT):
                with lock:
                    run.timeouts += 1
                return
            finished = completions.at[order]
            with lock:
                run.latencies_ms.append((finished - sent) * 1000)
                run.done_at.append(finished)

    return run_clients(client, clients, run)


MESSAGES_PER_ORDER = {"celery_tasks": STEPS, "kafka_messages": STEPS + 2}
