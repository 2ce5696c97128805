"""Writers contending for one aggregate get 202 or a clear 409, never a 500."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connections
from rest_framework.test import APIClient

from inventory.commands import RegisterProduct
from inventory.domain.stock import StockItem
from platform_core.eventsourcing.eventstore import ConcurrencyError
from platform_core.eventsourcing.repository import Repository
from platform_core.web.http import exception_handler

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.postgres
def test_concurrent_restocks_of_one_product_all_land_or_are_refused_cleanly(
    platform_runtime, staff_user
):
    platform_runtime.bus.handle(
        RegisterProduct(sku="HOT-1", name="Hot item", price=Decimal("1.00"), initial_stock=0)
    )
    start = threading.Barrier(8)
    statuses: list[int] = []

    def restock() -> None:
        client = APIClient(SERVER_NAME="localhost")
        client.force_authenticate(staff_user)
        start.wait()
        try:
            response = client.post("/api/products/HOT-1/restock/", {"quantity": 1}, format="json")
            statuses.append(response.status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=restock) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert set(statuses) <= {202, 409}
    stock = Repository(StockItem, store=platform_runtime.store, codec=platform_runtime.codec)
    assert stock.get("HOT-1").state.on_hand == statuses.count(202)


def test_a_write_that_loses_every_retry_is_a_409_with_advice():
    response = exception_handler(ConcurrencyError("stock-HOT-1", 4), {})
    assert response.status_code == 409
    assert response.data["error"]["code"] == "concurrent_modification"
    assert "retry" in response.data["error"]["message"]


def test_every_not_found_has_the_same_error_code(customer_client):
    unknown_order = customer_client.get("/api/orders/9f1c1f32-0000-4000-8000-000000000000/")
    unknown_url = customer_client.get("/api/no-such-thing/")
    assert unknown_order.status_code == unknown_url.status_code == 404
    assert unknown_order.json()["error"] == {"code": "not_found", "message": "Not found."}
    assert unknown_url.json()["error"]["code"] == "not_found"
