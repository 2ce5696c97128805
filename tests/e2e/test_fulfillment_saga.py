"""The order-fulfillment saga end to end, in one process: HTTP in, outbox, consumer groups,
Celery commands (eager), projections. Invariants after each scenario: no double charge,
stock conserved, the saga in a terminal state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from inventory.domain.stock import StockItem
from platform_core.eventsourcing.repository import Repository
from platform_core.models import OutboxMessage, SagaInstance
from shipping.commands import DispatchShipment
from tests.e2e.fulfillment_support import (
    charges,
    place,
    refunds,
    saga_of,
    settle,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
Status = SagaInstance.Status


def stock(runtime, sku: str = "TEA"):
    return Repository(StockItem, store=runtime.store, codec=runtime.codec).get(sku).state


def order(client, order_id: str) -> dict:
    return client.get(f"/api/orders/{order_id}/").json()


def assert_invariants(runtime, order_id: str) -> None:
    assert charges(runtime, order_id) <= 1, "double charge"
    level = stock(runtime)
    assert level.on_hand >= 0
    assert level.available >= 0, "stock never negative"
    assert saga_of(order_id).status in (Status.COMPLETED, Status.COMPENSATED)


def test_a_paid_order_is_reserved_charged_booked_and_confirmed(shop, customer_client):
    order_id = place(customer_client, "TEA", 2)
    settle(shop)

    shown = order(customer_client, order_id)
    assert shown["status"] == "confirmed"
    assert saga_of(order_id).status == Status.COMPLETED
    assert charges(shop, order_id) == 1
    assert (stock(shop).on_hand, stock(shop).reserved) == (10, 2)
    assert saga_of(order_id).data["tracking_number"].startswith("TRK")
    assert_invariants(shop, order_id)


def test_an_order_for_more_than_is_in_stock_is_cancelled_without_a_charge(shop, customer_client):
    order_id = place(customer_client, "TEA", 11)
    settle(shop)

    shown = order(customer_client, order_id)
    assert shown["status"] == "cancelled"
    assert "Insufficient stock" in shown["cancellation_reason"]
    assert charges(shop, order_id) == 0
    assert_invariants(shop, order_id)


def test_a_declined_card_releases_the_stock_and_cancels_the_order(shop, customer_client):
    order_id = place(customer_client, "TEA", 3, token="tok_decline")
    settle(shop)

    shown = order(customer_client, order_id)
    assert shown["status"] == "cancelled"
    assert shown["cancellation_reason"]
    assert charges(shop, order_id) == 0
    assert stock(shop).reserved == 0
    assert_invariants(shop, order_id)


def test_a_gateway_that_fails_transiently_is_retried_and_charges_once(shop, customer_client):
    order_id = place(customer_client, "TEA", 1, token="tok_error")
    settle(shop)

    assert order(customer_client, order_id)["status"] == "confirmed"
    assert charges(shop, order_id) == 1
    assert_invariants(shop, order_id)


def test_a_gateway_that_never_answers_times_out_and_is_compensated(shop, customer_client):
    order_id = place(customer_client, "TEA", 2, token="tok_timeout")
    settle(shop)
    assert saga_of(order_id).status == Status.RUNNING  # waiting for the payment's answer

    manager = shop.sagas["order-fulfillment"]
    later = timezone.now()
    for _ in range(3):  # re-sent while there is time, then the step is given up
        later += timedelta(minutes=5)
        manager.fire_deadlines(now=later)
        settle(shop)

    shown = order(customer_client, order_id)
    assert shown["status"] == "cancelled"
    assert "take-payment did not answer in time" in shown["cancellation_reason"]
    assert charges(shop, order_id) == 0
    assert stock(shop).reserved == 0
    assert_invariants(shop, order_id)


def test_cancelling_a_confirmed_order_refunds_and_releases(shop, customer_client):
    order_id = place(customer_client, "TEA", 2)
    settle(shop)
    response = customer_client.post(
        f"/api/orders/{order_id}/cancel/", {"reason": "changed my mind"}, format="json"
    )
    assert response.status_code == 202
    settle(shop)

    assert order(customer_client, order_id)["status"] == "cancelled"
    assert refunds(shop, order_id) == 1
    assert stock(shop).reserved == 0
    assert saga_of(order_id).status == Status.COMPENSATED
    assert_invariants(shop, order_id)


def test_a_dispatched_order_ships_commits_its_stock_and_can_no_longer_be_cancelled(
    shop, customer_client
):
    order_id = place(customer_client, "TEA", 2)
    settle(shop)
    shop.bus.handle(DispatchShipment(shipment_id=saga_of(order_id).data["shipment_id"]))
    settle(shop)

    assert order(customer_client, order_id)["status"] == "shipped"
    assert (stock(shop).on_hand, stock(shop).reserved) == (8, 0)
    response = customer_client.post(
        f"/api/orders/{order_id}/cancel/", {"reason": "too late"}, format="json"
    )
    assert response.status_code == 409
    assert charges(shop, order_id) == 1
    assert_invariants(shop, order_id)


def test_every_reply_delivered_again_changes_nothing(shop, customer_client):
    order_id = place(customer_client, "TEA", 2)
    settle(shop)
    OutboxMessage.objects.update(published_at=None)  # the relay sends everything again
    settle(shop)

    assert order(customer_client, order_id)["status"] == "confirmed"
    assert charges(shop, order_id) == 1
    assert (stock(shop).on_hand, stock(shop).reserved) == (10, 2)
    assert SagaInstance.objects.filter(key=order_id).count() == 1
    assert_invariants(shop, order_id)
