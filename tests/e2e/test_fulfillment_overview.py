"""Staff see the fulfillment at a glance: orders by status, sagas by state."""

from __future__ import annotations

import pytest

from tests.e2e.fulfillment_support import eager_commands, place, register, settle

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def in_process():
    with eager_commands():
        yield


def test_the_overview_counts_orders_by_status_and_sagas_by_state(
    in_process, platform_runtime, customer_client, staff_client
):
    register(platform_runtime, "MUG-1", stock=10)
    settle(platform_runtime)
    place(customer_client, "MUG-1", 1)
    place(customer_client, "MUG-1", 1)
    place(customer_client, "MUG-1", 1, token="tok_decline")
    settle(platform_runtime)

    response = staff_client.get("/api/overview/")

    assert response.status_code == 200
    assert response.json() == {
        "orders": {"confirmed": 2, "cancelled": 1},
        "sagas": {"order-fulfillment": {"completed": 2, "compensated": 1}},
    }


def test_only_staff_see_the_overview(customer_client):
    assert customer_client.get("/api/overview/").status_code == 403


def test_staff_can_list_one_customers_orders_and_customers_only_their_own(
    in_process, platform_runtime, customer, customer_client, other_client, staff_client
):
    register(platform_runtime, "MUG-1", stock=10)
    settle(platform_runtime)
    mine = place(customer_client, "MUG-1", 1)
    place(other_client, "MUG-1", 1)
    settle(platform_runtime)

    def listed(client, **params) -> list[str]:
        return [order["id"] for order in client.get("/api/orders/", params).json()["results"]]

    assert listed(staff_client, customer=customer.pk) == [mine]
    assert listed(other_client, customer=customer.pk) != [mine], "the filter is staff-only"
