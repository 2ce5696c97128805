"""The load fulfillment.py puts on the deployment: the run's sizes, the order bodies, the
watcher that sees orders leave `pending` in the read model, the closed loop of the saga
phase (each client waits for its order before it places the next) and the back-to-back
POST rounds of the POST phase."""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import json
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import psycopg
from _common import ADDRESS, APP_PREFIX, Http, percentile

ORDER_TIMEOUT = 120.0  # seconds a client waits for one order to be confirmed
WATCH_SECONDS = 0.01  # how often the read model is checked for orders in flight


@dataclass(frozen=True)
class Sizes:
    orders: int  # measured orders in the saga phase
    warmup: int  # orders before them, not measured
    clients: int
    post_rounds: int
    post_per_client: int  # back-to-back POSTs per client per round and contender
    profile_seconds: float  # py-spy recording (0: none)
    timeout: float  # the whole run, seconds
    solo_orders: int  # orders placed by one client alone: the latency without queueing
    open_orders: int  # the open loop's orders, at least (half the saturation rate)...
    open_seconds: float  # ... or this long at that rate, whichever is more


QUICK = Sizes(
    orders=160,
    warmup=32,
    clients=32,
    post_rounds=3,
    post_per_client=5,
    profile_seconds=0,
    timeout=300,
    solo_orders=10,
    open_orders=80,
    open_seconds=4,
)
DEFAULT = Sizes(
    orders=2000,
    warmup=96,
    clients=32,
    post_rounds=5,
    post_per_client=20,
    profile_seconds=15,
    timeout=1800,
    solo_orders=40,
    open_orders=400,
    open_seconds=30,
)


class OrderMaker:
    """Order bodies: 1-2 lines over the bench's products, tok_visa; a fixed seed per client."""

    def __init__(self, skus: Sequence[str], seed: int) -> None:
        self.skus, self.rng = list(skus), random.Random(seed)

    def body(self) -> bytes:
        lines = self.rng.sample(self.skus, self.rng.choice((1, 1, 2)))
        return json.dumps(
            {
                "items": [{"sku": sku, "quantity": self.rng.randint(1, 3)} for sku in lines],
                "shipping_address": ADDRESS,
                "payment_token": "tok_visa",
            }
        ).encode()


# --------------------------------------------------------------------------- watching


class Arrivals:
    """Clients waiting for their orders: `expect` an order, `arrived` wakes its client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}

    def expect(self, order_id: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._waiting[order_id] = event
        return event

    def arrived(self, order_id: str) -> None:
        """Call with the lock held."""
        event = self._waiting.pop(order_id, None)
        if event is not None:
            event.set()


class Watcher(Arrivals):
    """Watches the read model (read_order_summary) for orders in flight, one query every
    WATCH_SECONDS, and notes when each one was first seen out of `pending`: the time of
    the query that saw it (so at most one interval late)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._conn = psycopg.connect(url, autocommit=True, application_name=f"{APP_PREFIX}bench")
        self.seen: dict[str, tuple[float, str]] = {}
        self.queries = 0  # the bench's own transactions, left out of the product's count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                ids = list(self._waiting)
            if ids:
                at = time.time()
                rows = self._conn.execute(
                    "SELECT id::text, status FROM read_order_summary"
                    " WHERE id = ANY(%s::uuid[]) AND status <> 'pending'",
                    [ids],
                ).fetchall()
                self.queries += 1
                with self._lock:
                    for order_id, status in rows:
                        self.seen[order_id] = (at, status)
                        self.arrived(order_id)
            self._stop.wait(WATCH_SECONDS)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()


@dataclass
class Placed:
    order_id: str
    sent: float  # wall clock (time.time), comparable with the database's timestamps
    answered: float
    confirmed: float | None = None
    status: str = ""


@dataclass
class SagaRun:
    orders: list[Placed] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    started: float = 0.0
    ended: float = 0.0


def place_and_wait(
    http_: Http, body: bytes, sent: float, watcher: Watcher, run: SagaRun, lock: threading.Lock
) -> bool:
    """POST one order (timed from `sent`) and wait until the read model shows it out of
    `pending`; note it in `run`. False when it was not confirmed in time."""
    status, answer = http_.request(
        "POST", "/api/orders/", body, {"Idempotency-Key": str(uuid.uuid4())}
    )
    answered = time.time()
    if status != 202:
        with lock:
            run.errors[f"POST {status}"] += 1
        return True
    placed = Placed(str(json.loads(answer)["id"]), sent, answered)
    if not watcher.expect(placed.order_id).wait(ORDER_TIMEOUT):
        with lock:
            run.errors["not confirmed in time"] += 1
        return False
    placed.confirmed, placed.status = watcher.seen[placed.order_id]
    with lock:
        run.orders.append(placed)
        if placed.status != "confirmed":
            run.errors[f"order {placed.status}"] += 1
    return True


class Timed(Protocol):
    started: float
    ended: float


R = TypeVar("R", bound=Timed)


def run_clients(client: Callable[[int], None], clients: int, run: R) -> R:
    """Run `clients` threads of `client` (given its number) to the end; `run` timed."""
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    run.started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.ended = time.time()
    return run


def closed_loop(
    port: int,
    token: str,
    skus: Sequence[str],
    watcher: Watcher,
    clients: int,
    *,
    orders: int | None = None,
    seconds: float | None = None,
    seed: int = 0,
) -> SagaRun:
    """`clients` threads, each: POST an order, wait until it is confirmed, repeat; for
    `orders` orders in all, or for `seconds`."""
    run, lock = SagaRun(), threading.Lock()
    tickets = itertools.count()
    stop_at = time.monotonic() + seconds if seconds else None
    barrier = threading.Barrier(clients)

    def client(n: int) -> None:
        http_ = Http(port, token)
        maker = OrderMaker(skus, seed * 1000 + n)
        barrier.wait()
        try:
            while True:
                if orders is not None and next(tickets) >= orders:
                    return
                if stop_at is not None and time.monotonic() >= stop_at:
                    return
                if not place_and_wait(http_, maker.body(), time.time(), watcher, run, lock):
                    return
        finally:
            http_.close()

    return run_clients(client, clients, run)


def open_loop(
    port: int,
    token: str,
    skus: Sequence[str],
    watcher: Watcher,
    rate: float,
    orders: int,
    *,
    seed: int = 0,
    threads: int = 128,
) -> SagaRun:
    """Orders arriving at a fixed `rate` a second, whoever is still waiting: order i is
    due at start + i/rate and is timed from then, so a system that falls behind is timed
    from when the order arrived, not from when a free client sent it."""
    run, lock = SagaRun(), threading.Lock()
    local = threading.local()
    maker, maker_lock = OrderMaker(skus, seed), threading.Lock()

    def place(due: float) -> None:
        if not hasattr(local, "http"):
            local.http = Http(port, token)
        with maker_lock:
            body = maker.body()
        place_and_wait(local.http, body, due, watcher, run, lock)

    with concurrent.futures.ThreadPoolExecutor(threads, "open-loop") as pool:
        run.started = time.time()
        start = time.monotonic()
        for i in range(orders):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the arrival schedule, not a wait for the system
            pool.submit(place, run.started + i / rate)
    run.ended = time.time()
    return run


def saga_metrics(run: SagaRun, clients: int) -> dict[str, float]:
    done = [p for p in run.orders if p.status == "confirmed" and p.confirmed is not None]
    if len(done) < 2:
        raise RuntimeError(f"only {len(done)} orders confirmed; errors: {dict(run.errors)}")
    confirmed = sorted(p.confirmed for p in done if p.confirmed is not None)
    low, high = len(confirmed) // 10, len(confirmed) - 1 - len(confirmed) // 10
    latency = [(p.confirmed - p.sent) * 1000 for p in done if p.confirmed is not None]
    post = [(p.answered - p.sent) * 1000 for p in run.orders]
    return {
        "confirmed_per_s": (high - low) / (confirmed[high] - confirmed[low]),
        "confirmed_overall_per_s": len(confirmed) / (confirmed[-1] - run.started),
        "post_to_confirmed_p50_ms": percentile(latency, 50),
        "post_to_confirmed_p90_ms": percentile(latency, 90),
        "post_to_confirmed_p99_ms": percentile(latency, 99),
        "post_to_confirmed_max_ms": max(latency),
        "saga_post_p50_ms": percentile(post, 50),
        "saga_post_p99_ms": percentile(post, 99),
        "orders_confirmed": len(done),
        "orders_failed": sum(run.errors.values()),
        "in_flight_mean": statistics.fmean(latency) / 1000 * len(done) / (run.ended - run.started),
    }


# --------------------------------------------------------------------------- POST phase


def post_round(
    port: int,
    path: str,
    token: str,
    skus: Sequence[str],
    clients: int,
    per_client: int,
    idempotency: bool,
    seed: int,
) -> tuple[float, list[float], int]:
    """`clients` threads each POST `per_client` orders back to back: (requests/s,
    latencies in ms, non-2xx answers)."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        nonlocal failures
        http_ = Http(port, token)
        maker = OrderMaker(skus, seed * 1000 + n)
        bodies = [maker.body() for _ in range(per_client)]
        http_.request("GET", "/healthz")  # connect before the clock starts
        mine, bad = [], 0
        barrier.wait()
        for body in bodies:
            headers = {"Idempotency-Key": str(uuid.uuid4())} if idempotency else None
            start = time.perf_counter()
            status, _ = http_.request("POST", path, body, headers)
            mine.append((time.perf_counter() - start) * 1000)
            bad += not 200 <= status < 300
        http_.close()
        with lock:
            latencies.extend(mine)
            failures += bad

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return clients * per_client / (time.perf_counter() - start), latencies, failures
