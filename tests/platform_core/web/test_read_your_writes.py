"""Read your writes: a GET given a write's log position waits for the read model."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.db import connections

from platform_core.runtime import Runtime
from tests.orders.test_api_orders import ORDERS, order_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def projector(platform_runtime: Runtime) -> Iterator[None]:
    """The projector following the log in a thread, as `make run` runs it."""
    stop, wake = threading.Event(), threading.Event()

    def follow() -> None:
        try:
            platform_runtime.projections.run_forever(stop, wake, 0.01)
        finally:
            connections.close_all()

    worker = threading.Thread(target=follow)
    yield worker.start()
    stop.set()
    worker.join(timeout=10)
    assert not worker.is_alive()


def test_a_read_given_the_writes_position_sees_the_write(catalog, customer_client, projector):
    written = customer_client.post(ORDERS, order_body(), format="json")
    order_id, position = written.json()["id"], written["X-Log-Position"]

    response = customer_client.get(f"{ORDERS}{order_id}/", {"min_position": position})

    assert response.status_code == 200
    assert response.json()["status"] == "pending"


def test_the_position_can_be_sent_as_a_header_on_a_list(catalog, customer_client, projector):
    written = customer_client.post(ORDERS, order_body(), format="json")

    response = customer_client.get(
        ORDERS, headers={"X-Min-Log-Position": written["X-Log-Position"]}
    )

    assert [order["id"] for order in response.json()["results"]] == [written.json()["id"]]


def test_without_a_position_a_read_answers_at_once_even_if_stale(catalog, customer_client):
    order_id = customer_client.post(ORDERS, order_body(), format="json").json()["id"]

    assert customer_client.get(f"{ORDERS}{order_id}/").status_code == 404


def test_a_projection_that_does_not_catch_up_in_time_answers_503(
    catalog, customer_client, settings
):
    settings.READ_YOUR_WRITES_TIMEOUT = 0.05
    written = customer_client.post(ORDERS, order_body(), format="json")

    response = customer_client.get(
        f"{ORDERS}{written.json()['id']}/", {"min_position": written["X-Log-Position"]}
    )

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "projection_behind"


@pytest.mark.parametrize("bad", ["soon", "12", "1.2.3", "-1.5", "", "\u0663.1"])
def test_a_malformed_position_is_a_400(customer_client, bad):
    response = customer_client.get(ORDERS, {"min_position": bad})

    assert response.status_code == 400
    assert "min_position" in response.json()["error"]["details"]


@pytest.mark.parametrize("bad", ["soon", ""])
def test_a_malformed_position_header_is_a_400_naming_the_header(customer_client, bad):
    # A good parameter does not hide a bad header.
    response = customer_client.get(
        ORDERS, {"min_position": "0.0"}, headers={"X-Min-Log-Position": bad}
    )

    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["X-Min-Log-Position"]


def test_a_read_waits_for_the_later_of_parameter_and_header(catalog, customer_client, settings):
    settings.READ_YOUR_WRITES_TIMEOUT = 0.05
    written = customer_client.post(ORDERS, order_body(), format="json")

    response = customer_client.get(
        ORDERS, {"min_position": "0.0"}, headers={"X-Min-Log-Position": written["X-Log-Position"]}
    )

    assert response.status_code == 503


def test_a_write_through_a_read_url_never_waits(catalog, customer_client, settings):
    settings.READ_YOUR_WRITES_TIMEOUT = 0.05

    response = customer_client.post(
        f"{ORDERS}?min_position=99999999.0", order_body(), format="json"
    )

    assert response.status_code == 202


def test_products_wait_for_a_restock_to_show(catalog, staff_client, projector):
    written = staff_client.post("/api/products/MUG-1/restock/", {"quantity": 5}, format="json")

    response = staff_client.get("/api/products/", {"min_position": written["X-Log-Position"]})

    stock = {product["sku"]: product["on_hand"] for product in response.json()["results"]}
    assert stock["MUG-1"] == 105
