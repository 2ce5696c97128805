"""What the chaos scenarios (test_chaos.py) share: customers and staff driving a mix of
orders through the deployment's REST API while a fault is injected, and the figures each
scenario prints.

The traffic is what a shop sees: most cards captured, some declined, some failing
transiently, a few never answering; some customers cancel moments after ordering; staff
dispatch some confirmed orders. Every order is placed with an Idempotency-Key and retried
with the same key until the API answers, as a careful client does, so an order the web
accepted just before it was killed is placed once, and an order the API acknowledged must
exist afterwards: `lost` counts those that do not.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from tests.e2e.board_support import ADDRESS
from tests.e2e.deployment import SKU, Deployment

# What a customer's card does at the fake gateway (payments/gateway.py), by weight. Not
# `tok_refund_fail`: a refund the gateway refuses waits for a person, and the oracle
# rightly reports it.
CARDS = {"tok_visa": 14, "tok_decline": 2, "tok_error": 2, "tok_timeout": 1}
# Orders a second, placed at a steady pace (open loop) whatever the platform's speed: well
# under what a busy 2-core machine confirms, so a fault's backlog drains after it.
RATE = float(os.environ.get("CHAOS_RATE", "4"))
CANCEL_SHARE = 0.15
DISPATCH_SHARE = 0.15
RETRY_FOR_SECONDS = 120.0


class Client:
    """One user of the REST API; a request is retried (same body, same Idempotency-Key)
    while the web is unreachable or answers 5xx, and each such failure is counted."""

    def __init__(self, running: Deployment, username: str, password: str) -> None:
        self.running = running
        self.refused = 0
        self._lock = threading.Lock()
        self.token = ""
        self.token = self.call("POST", "/api/auth/token/", username=username, password=password)[
            "token"
        ]

    def call(self, method: str, path: str, *, key: str = "", **body: Any) -> Any:
        deadline = time.monotonic() + RETRY_FOR_SECONDS
        while True:
            try:
                return self._once(method, path, key, body)
            except urllib.error.HTTPError as error:
                if error.code < 500:
                    raise
                failure: Exception = error
            except (OSError, TimeoutError) as error:  # refused, reset, timed out
                failure = error
            with self._lock:
                self.refused += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: no answer for {RETRY_FOR_SECONDS} s") from (
                    failure
                )
            time.sleep(0.2)  # a client's pause before it tries again

    def _once(self, method: str, path: str, key: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.running.url + path,
            method=method,
            data=json.dumps(body).encode() if body else None,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        if self.token:
            request.add_header("Authorization", f"Token {self.token}")
        if key:
            request.add_header("Idempotency-Key", key)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")


@dataclass
class Traffic:
    """Orders placed by two customers' threads at RATE a second until `stop`, with
    cancels and dispatches."""

    running: Deployment
    seed: int
    acked: list[str] = field(default_factory=list)
    cancelled: int = 0
    dispatched: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _to_dispatch: list[str] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def start(self) -> Traffic:
        staff = Client(self.running, "staff", "staff-demo-pass")
        customers = [Client(self.running, "customer", "customer-demo-pass") for _ in range(2)]
        self.clients = [staff, *customers]
        for n, customer in enumerate(customers):
            every = len(customers) / RATE
            self._spawn(self._place_orders, customer, random.Random(self.seed * 10 + n), every)
        self._spawn(self._dispatch, staff)
        return self

    def wait_for_orders(self, count: int, timeout: float = 180) -> None:
        """Until `count` more orders have been acknowledged."""
        target = len(self.acked) + count
        self.running.wait_until(lambda: len(self.acked) >= target, f"{count} more orders", timeout)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=RETRY_FOR_SECONDS + 30)
        alive = [thread.name for thread in self._threads if thread.is_alive()]
        assert not alive, f"traffic threads still running: {alive}"
        assert not self.errors, f"the traffic failed: {self.errors}"

    @property
    def refused(self) -> int:
        return sum(client.refused for client in self.clients)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=self._guarded, args=(target, *args), daemon=True)
        thread.name = f"traffic-{len(self._threads)}"
        thread.start()
        self._threads.append(thread)

    def _guarded(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except Exception as error:  # the test reads it: a failing client fails the run
            self.errors.append(f"{threading.current_thread().name}: {error!r}")

    def _place_orders(self, customer: Client, draw: random.Random, every: float) -> None:
        """An order every `every` seconds (later if the API is slow to answer)."""
        cards, weights = zip(*CARDS.items(), strict=True)
        due = time.monotonic()
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due = max(due + every, time.monotonic())  # no burst after a slow answer
            card = draw.choices(cards, weights)[0]
            order = customer.call(
                "POST",
                "/api/orders/",
                key=str(uuid.UUID(int=draw.getrandbits(128))),
                items=[{"sku": SKU, "quantity": draw.randint(1, 3)}],
                shipping_address=ADDRESS,
                payment_token=card,
            )
            order_id = str(order["id"])
            with self._lock:
                self.acked.append(order_id)
            roll = draw.random()
            if roll < CANCEL_SHARE:
                time.sleep(draw.uniform(0, 0.3))  # the customer changes their mind moments later
                with contextlib.suppress(urllib.error.HTTPError):  # 409: too late
                    customer.call("POST", f"/api/orders/{order_id}/cancel/", reason="chaos")
                    self.cancelled += 1
            elif roll < CANCEL_SHARE + DISPATCH_SHARE:
                with self._lock:
                    self._to_dispatch.append(order_id)

    def _dispatch(self, staff: Client) -> None:
        """Dispatch the chosen orders once confirmed; one cancelled or shipped first is
        dropped. After `stop`, until every chosen order has got that far."""
        while not self._stop.is_set() or self._to_dispatch:
            time.sleep(0.5)  # the staff's round of the warehouse
            with self._lock:
                waiting = list(self._to_dispatch)
            try:
                rows = self.running.query(
                    "SELECT id::text, status, shipment_id FROM read_order_summary"
                    " WHERE id = ANY(%s::uuid[])",
                    [waiting],
                )
            except psycopg.OperationalError:  # the database is away: look again later
                continue
            for order_id, status, shipment_id in rows:
                ready = status == "confirmed" and shipment_id
                if not ready and status not in ("cancelled", "shipped"):
                    continue
                with self._lock:
                    self._to_dispatch.remove(order_id)
                if ready:
                    with contextlib.suppress(urllib.error.HTTPError):  # 409: cancelled first
                        staff.call("POST", f"/api/shipments/{shipment_id}/dispatch/")
                        self.dispatched += 1


@contextlib.contextmanager
def traffic(running: Deployment, seed: int, warm_up: int = 3) -> Iterator[Traffic]:
    """Traffic flowing (`warm_up` orders acknowledged) for the block, stopped after it."""
    flowing = Traffic(running, seed).start()
    try:
        flowing.wait_for_orders(warm_up)
        yield flowing
    finally:
        flowing.stop()


def lost(running: Deployment, acked: list[str]) -> int:
    """Acknowledged orders the event store does not have."""
    stored = {
        stream_id.removeprefix("order-")
        for (stream_id,) in running.query(
            "SELECT stream_id FROM event_store WHERE event_type = 'orders.OrderPlaced'"
        )
    }
    return len(set(acked) - stored)


def confirm_one(running: Deployment) -> float:
    """Place a good order now (retrying while the web is away); seconds until confirmed."""
    began = time.monotonic()
    customer = Client(running, "customer", "customer-demo-pass")
    order = customer.call(
        "POST",
        "/api/orders/",
        key=str(uuid.uuid4()),
        items=[{"sku": SKU, "quantity": 1}],
        shipping_address=ADDRESS,
        payment_token="tok_visa",
    )
    running.wait_until(
        lambda: (
            running.query(
                "SELECT 1 FROM read_order_summary WHERE id = %s AND status = 'confirmed'",
                [order["id"]],
            )
            != []
        ),
        "a probe order confirmed",
    )
    return time.monotonic() - began


def figures(name: str, proof: str, flowed: Traffic, recovery: float, report: str) -> str:
    """The scenario's one line: its fault proven, its orders, its recovery, the oracle."""
    by_status = flowed.running.orders_by_status()
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
    counts = [
        line.split(":")[-1].split()[0]
        for line in report.splitlines()
        if re.match(r"I[1-7] .*: \d+ violation", line)
    ]
    # The verify process's log holds every earlier scenario's report too: the last seven.
    counts = counts[-7:]
    verdict = f"I1-I7 {'/'.join(counts)}" if len(counts) == 7 else f"unreadable: {report!r}"
    return (
        f"chaos {name}: {proof} | {len(flowed.acked)} orders acked, "
        f"{lost(flowed.running, flowed.acked)} lost, {flowed.refused} requests retried, "
        f"{flowed.cancelled} cancels, {flowed.dispatched} dispatches; all orders: {statuses} | "
        f"recovered in {recovery:.1f} s | verify_consistency: {verdict}"
    )
