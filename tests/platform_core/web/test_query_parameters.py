"""A malformed query parameter is refused, never ignored: 400 naming it on REST, close
code 4400 on the order websockets."""

from __future__ import annotations

import uuid

import pytest

from tests.orders.test_api_orders import ORDERS
from tests.platform_core.live.websocket_support import closed_with, converse, open_socket, place
from tests.platform_core.live.websocket_support import token_auth as websocket_token
from tests.platform_core.web.endpoint_support import assert_json_error

pytestmark = pytest.mark.django_db(transaction=True)

READS = [ORDERS, f"{ORDERS}{uuid.UUID(int=7)}/", "/api/products/"]


ARABIC_INDIC_ONE_DOT_TWO = "\u0661.\u0662"  # str.isdigit() takes these digits


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize(
    "position", ["abc", "", "1", "1.", ".1", "-1.2", "1.2.3", "1.\x00", ARABIC_INDIC_ONE_DOT_TWO]
)
def test_a_malformed_min_position_is_a_bad_request(staff_client, path, position):
    response = staff_client.get(path, {"min_position": position})

    assert "min_position" in assert_json_error(response, 400)["details"]


def test_an_empty_min_position_header_is_a_bad_request(staff_client):
    response = staff_client.get(ORDERS, HTTP_X_MIN_LOG_POSITION="")

    assert "X-Min-Log-Position" in assert_json_error(response, 400)["details"]


@pytest.mark.parametrize("page", ["abc", "", "0", "-1", "1.0", " 1", "1e3", "9" * 40, "\x00"])
def test_a_malformed_page_number_is_a_bad_request(customer_client, page):
    response = customer_client.get(ORDERS, {"page": page})

    assert "page" in assert_json_error(response, 400)["details"]


def test_a_page_past_the_end_is_not_found_and_last_is_a_page(customer_client):
    assert_json_error(customer_client.get(ORDERS, {"page": 2}), 404)
    assert customer_client.get(ORDERS, {"page": "last"}).status_code == 200
    assert customer_client.get(ORDERS, {"page": "1"}).status_code == 200


@pytest.mark.parametrize("status", ["lost", "", "PENDING", "pending ", "\x00"])
def test_an_unknown_status_filter_is_a_bad_request(customer_client, status):
    response = customer_client.get(ORDERS, {"status": status})

    assert "status" in assert_json_error(response, 400)["details"]


@pytest.mark.parametrize("customer", ["abc", "", "0", "1.0", " 1", "+1", "9" * 20, "\u0661"])
def test_a_malformed_customer_filter_is_a_bad_request(staff_client, customer):
    response = staff_client.get(ORDERS, {"customer": customer})

    assert "customer" in assert_json_error(response, 400)["details"]


def test_a_well_formed_customer_filter_is_answered(staff_client, customer):
    response = staff_client.get(ORDERS, {"customer": str(customer.pk), "status": "pending"})

    assert response.status_code == 200


@pytest.mark.parametrize("after", ["abc", "", "1", "1.", "-1.2", "1.2.3", "%00", "1.2%20"])
@pytest.mark.parametrize("route", ["list", "detail"])
def test_a_malformed_resume_position_closes_the_websocket_with_4400(customer, route, after):
    order = place(customer, 1, 1)
    path = "/ws/orders/" if route == "list" else f"/ws/orders/{order.id}/"
    headers = websocket_token(customer)

    async def scenario() -> None:
        socket = await open_socket(f"{path}?after={after}", headers)
        assert await closed_with(socket) == 4400

    converse(scenario)
