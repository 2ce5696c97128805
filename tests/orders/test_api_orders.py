"""Placing, reading, listing and cancelling orders over HTTP, and who may see what."""

from typing import Any
from uuid import UUID

import pytest
from rest_framework.test import APIClient

from orders.commands import (
    CancelOrder,
    ConfirmOrder,
    MarkOrderShipped,
    OrderItem,
    PlaceOrder,
)
from orders.events import ShippingAddress
from platform_core.eventsourcing.eventstore import LogPosition
from tests.support import stored_events

pytestmark = pytest.mark.django_db(transaction=True)

ORDERS = "/api/orders/"
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "1 Analytical St",
    "city": "London",
    "postal_code": "N1 9GU",
    "country": "GB",
}


def order_body(*items: tuple[str, int]) -> dict[str, Any]:
    return {
        "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items or [("MUG-1", 2)]],
        "shipping_address": ADDRESS,
        "payment_token": "tok_visa",
    }


def place_order(order_id: UUID, customer_id: int) -> PlaceOrder:
    """The command the API sends for `order_body()`, for a test to handle on the bus."""
    return PlaceOrder(
        order_id=order_id,
        customer_id=customer_id,
        items=(OrderItem(sku="MUG-1", quantity=1),),
        shipping_address=ShippingAddress(**ADDRESS),
        payment_token="tok_visa",
    )


def place(client: APIClient, *items: tuple[str, int]) -> str:
    response = client.post(ORDERS, order_body(*items), format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


@pytest.fixture
def ship(platform_runtime):
    def ship(order_id: str) -> None:
        platform_runtime.bus.handle(ConfirmOrder(order_id=UUID(order_id)))
        platform_runtime.bus.handle(
            MarkOrderShipped(order_id=UUID(order_id), shipment_id="SHP-1", tracking_number="TRK1")
        )

    return ship


def test_placing_an_order_is_accepted_and_says_where_to_follow_it(catalog, customer_client):
    response = customer_client.post(ORDERS, order_body(("MUG-1", 2)), format="json")

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert response["Location"] == f"/api/orders/{UUID(body['id'])}/"
    assert response["X-Log-Position"] == body["log_position"]


def test_a_placed_order_shows_its_priced_items_total_and_history(catalog, customer_client, project):
    order_id = place(customer_client, ("MUG-1", 2), ("TEA-2", 3))
    project()

    response = customer_client.get(f"{ORDERS}{order_id}/")

    assert response.status_code == 200
    order = response.json()
    assert (order["id"], order["status"], order["total"]) == (order_id, "pending", "26.97")
    assert order["items"] == [
        {"sku": "MUG-1", "name": "Mug", "quantity": 2, "unit_price": "7.50"},
        {"sku": "TEA-2", "name": "Green tea", "quantity": 3, "unit_price": "3.99"},
    ]
    assert [entry["type"] for entry in order["history"]] == ["OrderPlaced"]
    assert order["cancellation_reason"] == ""
    assert order["shipment"] == {"id": None, "status": None, "tracking_number": None}


def test_projecting_reaches_the_log_position_a_write_reported(
    catalog, customer_client, platform_runtime, project
):
    response = customer_client.post(ORDERS, order_body(), format="json")
    written = LogPosition.parse(response["X-Log-Position"])

    project()

    assert platform_runtime.projections.checkpoint("order_summary") >= written


def test_customers_list_only_their_own_orders_and_staff_list_all(
    catalog, customer_client, other_client, staff_client, project
):
    mine = place(customer_client)
    theirs = place(other_client)
    project()

    def listed(client: APIClient) -> set[str]:
        response = client.get(ORDERS)
        assert response.status_code == 200
        return {order["id"] for order in response.json()["results"]}

    assert listed(customer_client) == {mine}
    assert listed(other_client) == {theirs}
    assert listed(staff_client) == {mine, theirs}


def test_orders_can_be_filtered_by_status(catalog, customer_client, platform_runtime, project):
    kept = place(customer_client)
    cancelled = place(customer_client)
    platform_runtime.bus.handle(CancelOrder(order_id=UUID(cancelled), reason="oops"))
    project()

    def ids(status: str) -> list[str]:
        response = customer_client.get(ORDERS, {"status": status})
        assert response.status_code == 200
        return [order["id"] for order in response.json()["results"]]

    assert ids("pending") == [kept]
    assert ids("cancelled") == [cancelled]
    assert ids("shipped") == []


@pytest.mark.parametrize("query", [{"status": "lost"}, {"status": ""}, {"customer": ""}])
def test_an_unknown_or_empty_filter_is_refused(staff_client, query):
    response = staff_client.get(ORDERS, query)

    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == set(query)


def test_the_order_list_is_paginated_newest_first(
    catalog, customer, customer_client, platform_runtime, project
):
    placed = []
    for _ in range(51):
        order_id = UUID(int=len(placed) + 1)
        platform_runtime.bus.handle(place_order(order_id, customer.pk))
        placed.append(str(order_id))
    project()

    first = customer_client.get(ORDERS).json()
    second = customer_client.get(first["next"]).json()

    assert first["count"] == 51
    assert len(first["results"]) == 50
    assert first["results"][0]["id"] == placed[-1]
    assert [order["id"] for order in second["results"]] == [placed[0]]
    assert second["next"] is None
    assert customer_client.get(ORDERS, {"page": 3}).status_code == 404


@pytest.mark.parametrize("path", ["", "events/"])
def test_another_customers_order_is_not_found(
    catalog, customer_client, other_client, project, path
):
    order_id = place(customer_client)
    project()

    response = other_client.get(f"{ORDERS}{order_id}/{path}")

    assert response.status_code == 404
    assert "error" in response.json()


def test_another_customers_order_cannot_be_cancelled(
    catalog, customer_client, other_client, project
):
    order_id = place(customer_client)
    before = stored_events()

    response = other_client.post(f"{ORDERS}{order_id}/cancel/", {"reason": "mine"}, format="json")

    assert response.status_code == 404
    assert stored_events() == before
    project()
    assert customer_client.get(f"{ORDERS}{order_id}/").json()["status"] == "pending"


def test_staff_see_any_order_and_its_events(catalog, customer_client, staff_client, project):
    order_id = place(customer_client)
    project()

    assert staff_client.get(f"{ORDERS}{order_id}/").status_code == 200
    assert staff_client.get(f"{ORDERS}{order_id}/events/").status_code == 200


def test_an_unknown_order_is_not_found(customer_client):
    order_id = "00000000-0000-4000-8000-00000000abcd"

    assert customer_client.get(f"{ORDERS}{order_id}/").status_code == 404
    assert customer_client.get(f"{ORDERS}{order_id}/events/").status_code == 404
    cancel = customer_client.post(f"{ORDERS}{order_id}/cancel/", {"reason": "x"}, format="json")
    assert cancel.status_code == 404


def test_asking_to_cancel_records_the_request_for_the_saga_to_decide(
    catalog, customer_client, project
):
    order_id = place(customer_client)

    response = customer_client.post(
        f"{ORDERS}{order_id}/cancel/", {"reason": "Found it cheaper"}, format="json"
    )

    assert response.status_code == 202
    assert (response.json()["id"], response.json()["cancellation"]) == (order_id, "requested")
    project()
    order = customer_client.get(f"{ORDERS}{order_id}/").json()
    assert order["status"] == "pending", "cancelled once the shipment, if any, is"
    assert [entry["type"] for entry in order["history"]] == [
        "OrderPlaced",
        "OrderCancellationRequested",
    ]


def test_staff_may_ask_to_cancel_a_customers_order(catalog, customer_client, staff_client):
    order_id = place(customer_client)

    response = staff_client.post(f"{ORDERS}{order_id}/cancel/", {"reason": "fraud"}, format="json")

    assert response.status_code == 202
    events = customer_client.get(f"{ORDERS}{order_id}/events/").json()
    assert events[-1]["type"] == "orders.OrderCancellationRequested"
    assert events[-1]["data"]["reason"] == "fraud"


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "x" * 501}])
def test_a_cancellation_needs_a_reason(catalog, customer_client, body):
    order_id = place(customer_client)
    before = stored_events()

    response = customer_client.post(f"{ORDERS}{order_id}/cancel/", body, format="json")

    assert response.status_code == 400
    assert "reason" in response.json()["error"]["details"]
    assert stored_events() == before


def test_a_shipped_order_cannot_be_cancelled(catalog, customer_client, project, ship):
    order_id = place(customer_client)
    ship(order_id)
    before = stored_events()

    response = customer_client.post(
        f"{ORDERS}{order_id}/cancel/", {"reason": "too slow"}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        "An order that is shipped can no longer be cancelled."
    )
    assert stored_events() == before
    project()
    order = customer_client.get(f"{ORDERS}{order_id}/").json()
    assert order["status"] == "shipped"
    assert order["shipment"] == {"id": "SHP-1", "status": "dispatched", "tracking_number": "TRK1"}


def test_the_events_of_an_order_carry_the_requests_correlation_id(
    catalog, customer, customer_client
):
    placed = customer_client.post(
        ORDERS, order_body(), format="json", HTTP_X_CORRELATION_ID="checkout-42"
    )
    order_id = placed.json()["id"]
    customer_client.post(
        f"{ORDERS}{order_id}/cancel/",
        {"reason": "oops"},
        format="json",
        HTTP_X_CORRELATION_ID="cancel-43",
    )

    response = customer_client.get(f"{ORDERS}{order_id}/events/")

    assert placed["X-Correlation-ID"] == "checkout-42"
    assert response.status_code == 200
    events = response.json()
    assert [(e["type"], e["version"]) for e in events] == [
        ("orders.OrderPlaced", 1),
        ("orders.OrderCancellationRequested", 2),
    ]
    assert [e["metadata"]["correlation_id"] for e in events] == ["checkout-42", "cancel-43"]
    assert {e["metadata"]["actor"] for e in events} == {f"user:{customer.pk}"}
    causes = [UUID(e["metadata"]["causation_id"]) for e in events]
    assert causes[0] != causes[1]
    assert events[0]["data"]["order_id"] == order_id
    assert events[0]["data"]["total"] == "15.00"
