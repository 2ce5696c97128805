"""The order-fulfillment saga against the deployment's real processes, raced and broken
as an operator would see it happen (tests/e2e/deployment.py): cancels racing every step,
the Celery worker down for longer than the step deadlines, the saga's consumer down for
minutes and killed. Each run ends with `manage.py verify_consistency`: every order
confirmed or cancelled, no money kept for a cancelled order, no stock held for one.

Slow (a few minutes): `make test-faults`; CI runs it. Sizes: FAULT_ORDERS (30).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.deployment import SKU, Deployment, deployment

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.rabbitmq]

ORDERS = int(os.environ.get("FAULT_ORDERS", "30"))


def orders_by_status(running: Deployment) -> dict[str, int]:
    return dict(running.query("SELECT status, count(*) FROM read_order_summary GROUP BY status"))


def ever_confirmed(running: Deployment) -> set[str]:
    rows = running.query(
        "SELECT stream_id FROM event_store WHERE event_type = 'orders.OrderConfirmed'"
    )
    return {stream_id.removeprefix("order-") for (stream_id,) in rows}


def charged_and_refunded(running: Deployment) -> tuple[int, int]:
    [(charged, refunded)] = running.query(
        "SELECT count(*) FILTER (WHERE operation = 'charge'),"
        "       count(*) FILTER (WHERE operation = 'refund')"
        " FROM payments_gateway_attempts WHERE outcome = 'succeeded'"
    )
    return charged, refunded


def settle(running: Deployment, timeout: float = 240) -> str:
    running.wait_until(running.settled, "sagas ended, outbox empty, projections caught up", timeout)
    running.wait_until(
        lambda: (
            sum(orders_by_status(running).values())
            == len(
                running.query("SELECT 1 FROM event_store WHERE event_type = 'orders.OrderPlaced'")
            )
            and not orders_by_status(running).get("pending")
        ),
        "every order projected and none pending",
    )
    return running.verify()


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def fast_deadlines(scratch: Path) -> Iterator[Deployment]:
    with deployment(scratch, SAGA_STEP_SECONDS="5", KAFKA_SESSION_TIMEOUT_MS="3000") as running:
        yield running


def test_cancels_racing_every_step_leave_no_money_and_no_stock_behind(fast_deadlines):
    running = fast_deadlines
    customer = running.api()
    delays = random.Random(13)  # seeded: the same spread of cancel times on every run
    cancels: list[threading.Timer] = []
    for _ in range(ORDERS):
        order_id = customer.place_order(SKU, quantity=delays.randint(1, 3))
        cancel = threading.Timer(
            delays.uniform(0, 0.5),
            customer.call,
            ["POST", f"/api/orders/{order_id}/cancel/"],
            {"reason": "changed my mind"},
        )
        cancel.start()
        cancels.append(cancel)
    for cancel in cancels:
        cancel.join()

    report = settle(running)

    assert orders_by_status(running) == {"cancelled": ORDERS}, report
    charged, refunded = charged_and_refunded(running)
    assert charged == refunded, "every charge refunded"
    [(held,)] = running.query("SELECT reserved FROM read_product_stock WHERE sku = %s", [SKU])
    assert held == 0
    print(f"\n{ORDERS} orders cancelled while running: {charged} charged and refunded")


def test_a_killed_saga_consumer_is_replaced_and_the_saga_goes_on(fast_deadlines):
    running = fast_deadlines
    customer = running.api()
    customer.wait_for_status(customer.place_order(SKU), "confirmed", seconds=60)

    running.kill("consumer-order-fulfillment")
    running.start("consumer-order-fulfillment")
    began = time.monotonic()
    customer.wait_for_status(customer.place_order(SKU), "confirmed", seconds=120)

    print(
        f"\nkilled and restarted: the next order confirmed {time.monotonic() - began:.1f} s later"
    )
    settle(running)


STUCK = "SELECT count(*) FROM saga_instances WHERE stuck_since IS NOT NULL"


def test_a_worker_outage_longer_than_the_deadlines_strands_no_order(fast_deadlines):
    running = fast_deadlines
    running.kill("worker")
    customer = running.api()
    placed = [customer.place_order(SKU) for _ in range(24)]
    # The outage lasts until every saga has re-sent its step three times (5 + 10 + 20 s):
    # where the saga used to give up and strand the order.
    running.wait_until(
        lambda: (
            running.query(
                "SELECT count(*) FROM saga_instances WHERE status = 'running' AND resends >= 3"
            )
            == [(len(placed),)]
        ),
        "every saga re-sending with backoff",
    )
    [(flagged,)] = running.query(
        "SELECT count(*) FROM saga_instances WHERE stuck_since IS NOT NULL"
    )
    assert flagged == len(placed), "flagged for a person, but still going"

    running.start("worker")
    report = settle(running)

    assert orders_by_status(running) == {"confirmed": len(placed)}, report
    assert running.query(STUCK) == [(0,)]


def test_a_worker_outage_past_the_give_up_time_cancels_consistently(scratch):
    with deployment(
        scratch, SAGA_STEP_SECONDS="5", SAGA_GIVE_UP_SECONDS="12", KAFKA_SESSION_TIMEOUT_MS="3000"
    ) as running:
        running.kill("worker")
        customer = running.api()
        placed = [customer.place_order(SKU) for _ in range(12)]
        running.wait_until(
            lambda: (
                running.query("SELECT count(*) FROM saga_instances WHERE status = 'compensating'")
                == [(len(placed),)]
            ),
            "every saga given up (the step in doubt compensated)",
        )

        running.start("worker")
        report = settle(running)

        assert orders_by_status(running) == {"cancelled": len(placed)}, report
        charged, refunded = charged_and_refunded(running)
        assert charged == refunded


def test_a_long_saga_consumer_outage_cancels_no_confirmed_order(scratch):
    with deployment(
        scratch, SAGA_STEP_SECONDS="5", SAGA_GIVE_UP_SECONDS="30", KAFKA_SESSION_TIMEOUT_MS="3000"
    ) as running:
        customer = running.api()
        placing = threading.Event()

        def keep_placing() -> None:
            while not placing.is_set():
                customer.place_order(SKU)

        placer = threading.Thread(target=keep_placing)
        placer.start()
        try:
            # Down while orders are at every step, some with their confirmation on its
            # way: the orders context confirms those, and the saga cannot hear it.
            running.wait_until(
                lambda: (
                    running.query(
                        "SELECT count(*) FROM saga_instances WHERE step = 3 AND status = 'running'"
                    )[0][0]
                    >= 2
                ),
                "sagas confirming their orders",
            )
            running.kill("consumer-order-fulfillment")
        finally:
            placing.set()
            placer.join()
        at_confirm = {
            key
            for (key,) in running.query(
                "SELECT key FROM saga_instances WHERE step = 3 AND status = 'running'"
            )
        }
        running.wait_until(
            lambda: at_confirm <= ever_confirmed(running), "the orders context confirming them"
        )
        # The outage lasts until the silent confirmations were re-sent five times
        # (5 + 10 + 20 + 40 + 40 s: about two minutes), well past the 30 s give-up of the
        # other steps.
        running.wait_until(
            lambda: (
                running.query(
                    "SELECT min(resends) FROM saga_instances WHERE key = ANY(%s)",
                    [list(at_confirm)],
                )[0][0]
                >= 5
            ),
            "confirmations re-sent during the outage",
            timeout=600,
        )

        running.start("consumer-order-fulfillment")
        settle(running)

        confirmed = ever_confirmed(running)
        [(cancelled_after_confirming,)] = running.query(
            "SELECT count(*) FROM read_order_summary"
            " WHERE status = 'cancelled' AND id = ANY(%s::uuid[])",
            [list(confirmed)],
        )
        assert len(confirmed) >= len(at_confirm) >= 2
        assert cancelled_after_confirming == 0
        print(f"\n{len(at_confirm)} orders confirmed while the saga's consumer was down")


def test_dispatch_racing_a_cancel_ships_or_cancels_and_keeps_no_money(fast_deadlines):
    """The customer cancels a confirmed order and staff dispatch it moments later: the
    shipment decides. Shipped: charged, the cancellation refused. Cancelled: refunded,
    the dispatch refused (409)."""
    running = fast_deadlines
    customer, staff = running.api(), running.api("staff", "staff-demo-pass")
    placed = [customer.place_order(SKU) for _ in range(ORDERS // 2)]
    shipments = {
        order_id: customer.wait_for_status(order_id, "confirmed", seconds=120)["shipment"]["id"]
        for order_id in placed
    }
    gaps = random.Random(5)  # seeded: the same spread of dispatch times on every run

    def dispatch(order_id: str) -> None:
        with contextlib.suppress(urllib.error.HTTPError):  # 409: cancelled first
            staff.call("POST", f"/api/shipments/{shipments[order_id]}/dispatch/")

    racers = []
    for order_id in placed:
        # The cancel goes first; the carrier comes 0 to 1.5 s later, while the saga is
        # asking shipping to cancel, before, or after.
        customer.call("POST", f"/api/orders/{order_id}/cancel/", reason="changed my mind")
        racer = threading.Timer(gaps.uniform(0, 1.5), dispatch, [order_id])
        racer.start()
        racers.append(racer)
    for racer in racers:
        racer.join()
    report = settle(running)

    outcomes = orders_by_status(running)
    assert set(outcomes) <= {"shipped", "cancelled"}, report
    [(cancelled,)] = running.query(
        "SELECT count(*) FROM read_order_summary WHERE status = 'cancelled'"
        " AND payment_status = 'refunded' AND shipment_status = 'cancelled'"
    )
    assert cancelled == outcomes.get("cancelled", 0)
    refused = (
        "SELECT count(*) FROM event_store WHERE event_type = 'orders.OrderCancellationRefused'"
    )
    assert running.query(refused) == [(outcomes.get("shipped", 0),)], "each told it was too late"
    assert running.query("SELECT count(*) FROM dead_letters") == [(0,)]
    print(f"\ndispatch racing cancel: {outcomes}")
