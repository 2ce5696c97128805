"""The HTTP edges every endpoint shares: authentication, input validation, JSON errors,
body limits, correlation ids, the OpenAPI document and the probes."""

import json
from typing import Any
from uuid import UUID

import pytest
from asgiref.sync import AsyncToSync, SyncToAsync, iscoroutinefunction
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from rest_framework.test import APIClient

from tests.orders.test_api_orders import ADDRESS, ORDERS, order_body
from tests.platform_core.web.endpoint_support import assert_json_error
from tests.support import stored_events

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "/api/auth/token/"


def fresh_client() -> APIClient:
    return APIClient(SERVER_NAME="localhost")


def test_a_token_for_a_username_and_password_authenticates_later_requests(customer):
    response = fresh_client().post(
        TOKEN, {"username": "alice", "password": "alice-pass-123"}, format="json"
    )
    assert response.status_code == 200
    client = fresh_client()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")

    listing = client.get(ORDERS)

    assert listing.status_code == 200
    assert listing.json()["results"] == []


def test_a_wrong_password_gets_no_token(customer):
    response = fresh_client().post(TOKEN, {"username": "alice", "password": "guess"}, format="json")

    error = assert_json_error(response, 400)
    assert "token" not in response.json()
    assert error["details"]


@pytest.mark.parametrize(
    "credentials", [{"username": 7, "password": "alice-pass-123"}, {"username": "alice"}]
)
def test_a_login_takes_two_strings(customer, credentials):
    response = fresh_client().post(TOKEN, credentials, format="json")

    assert assert_json_error(response, 400)["details"]


def test_an_unknown_token_is_unauthorized(customer):
    client = fresh_client()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")

    assert_json_error(client.get(ORDERS), 401)


def test_orders_need_credentials(anonymous_client):
    error = assert_json_error(anonymous_client.get(ORDERS), 401)

    assert error["code"] == "not_authenticated"
    assert anonymous_client.get(ORDERS)["WWW-Authenticate"] == "Token"
    assert_json_error(anonymous_client.post(ORDERS, {}, format="json"), 401)


def test_a_session_login_authenticates_too(customer):
    client = fresh_client()
    assert client.login(username="alice", password="alice-pass-123")

    assert client.get(ORDERS).status_code == 200


def test_malformed_json_is_a_bad_request(customer_client):
    before = stored_events()

    response = customer_client.post(ORDERS, '{"items": [', content_type="application/json")

    assert assert_json_error(response, 400)["code"] == "parse_error"
    assert stored_events() == before


@pytest.mark.parametrize("path", [ORDERS, f"{ORDERS}{UUID(int=1)}/cancel/", TOKEN])
def test_json_nested_ten_thousand_deep_is_a_bad_request_everywhere(customer_client, path):
    before = stored_events()
    body = "[" * 10_000 + "]" * 10_000  # about 20 KB, far under the size limit

    response = customer_client.post(path, body, content_type="application/json")

    assert assert_json_error(response, 400)["code"] == "parse_error"
    assert stored_events() == before


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", "payment_token=tok_visa"),
        ("text/plain", '{"items": []}'),
        ("application/xml", "<order/>"),
    ],
)
def test_a_body_that_is_not_json_is_an_unsupported_media_type(customer_client, content_type, body):
    before = stored_events()

    response = customer_client.post(ORDERS, body, content_type=content_type)

    assert assert_json_error(response, 415)["code"] == "unsupported_media_type"
    assert stored_events() == before


def test_an_oversized_body_is_refused_before_it_is_read(customer_client):
    before = stored_events()
    padding = "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps({"payment_token": padding})

    response = customer_client.post(
        ORDERS, body, content_type="application/json", HTTP_X_CORRELATION_ID="big-1"
    )

    assert assert_json_error(response, 413)["code"] == "request_too_large"
    assert response["X-Correlation-ID"] == "big-1", "answered inside the correlation"
    assert stored_events() == before


@pytest.mark.parametrize("body", ["[1, 2]", "null", '"order"'])
def test_a_json_body_that_is_not_an_object_is_a_bad_request(customer_client, body):
    response = customer_client.post(ORDERS, body, content_type="application/json")

    assert assert_json_error(response, 400)["code"] == "invalid"


def test_a_request_without_a_usable_correlation_id_gets_a_fresh_one(customer_client):
    response = customer_client.get(ORDERS, HTTP_X_CORRELATION_ID="not safe\nto log")

    assert UUID(response["X-Correlation-ID"])


def test_an_order_for_an_unknown_product_is_refused_and_changes_nothing(customer_client):
    before = stored_events()

    response = customer_client.post(ORDERS, order_body(("NOPE-9", 1)), format="json")

    assert response.status_code == 400
    assert "NOPE-9" in response.json()["error"]["message"]
    assert stored_events() == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"items": []}, "items"),
        ({"items": [{"sku": "MUG-1", "quantity": 0}]}, "items"),
        ({"items": [{"sku": "MUG-1", "quantity": "two"}]}, "items"),
        ({"items": [{"sku": "MUG-1", "quantity": 1}] * 101}, "items"),
        ({"shipping_address": {**ADDRESS, "country": "gb"}}, "shipping_address"),
        ({"shipping_address": {"name": "Ada"}}, "shipping_address"),
        ({"payment_token": ""}, "payment_token"),
        ({"payment_token": 123}, "payment_token"),
        ({"items": [{"sku": "MUG-1", "quantity": "2"}]}, "items"),
        ({"items": [{"sku": "MUG-1", "quantity": 2.0}]}, "items"),
        ({"items": [{"sku": "MUG-1", "quantity": True}]}, "items"),
        ({"items": [{"sku": 1, "quantity": 1}]}, "items"),
        ({"shipping_address": {**ADDRESS, "postal_code": 19}}, "shipping_address"),
    ],
    ids=[
        "no-items",
        "zero-quantity",
        "text-quantity",
        "too-many-lines",
        "lower-case-country",
        "partial-address",
        "blank-payment-token",
        "number-payment-token",
        "string-quantity",
        "float-quantity",
        "boolean-quantity",
        "number-sku",
        "number-postal-code",
    ],
)
def test_an_invalid_order_is_refused_with_the_field_named(customer_client, change, field):
    before = stored_events()

    response = customer_client.post(ORDERS, {**order_body(), **change}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], list(error["details"])) == ("invalid", [field])
    assert stored_events() == before


def test_a_method_an_endpoint_does_not_serve_is_refused(customer_client):
    response = customer_client.delete(ORDERS)

    assert assert_json_error(response, 405)["code"] == "method_not_allowed"


def test_an_unknown_path_answers_json(customer_client):
    response = customer_client.get("/api/no-such-thing/")

    assert_json_error(response, 404)


def test_the_openapi_document_describes_the_order_endpoints(anonymous_client):
    response = anonymous_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    assert {
        "/api/orders/",
        "/api/orders/{order_id}/",
        "/api/orders/{order_id}/cancel/",
        "/api/orders/{order_id}/events/",
        "/api/products/",
        "/api/products/{sku}/restock/",
    } <= set(document["paths"])
    assert set(document["paths"]["/api/orders/"]) >= {"get", "post"}
    place = document["paths"]["/api/orders/"]["post"]
    assert "202" in place["responses"]
    assert "Idempotency-Key" in {parameter["name"] for parameter in place["parameters"]}


def test_an_accept_header_without_json_is_not_acceptable(customer_client):
    response = customer_client.get(ORDERS, HTTP_ACCEPT="text/html")

    assert assert_json_error(response, 406)["code"] == "not_acceptable"


def test_the_interactive_docs_are_served(anonymous_client):
    response = anonymous_client.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("probe", ["/healthz", "/readyz"])
def test_the_probes_answer_ok(anonymous_client, probe):
    response = anonymous_client.get(probe)

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def _thread_hand_offs(chain: Any) -> list[str]:
    """The sync/async adapters on the way from the ASGI handler down to the view, and the
    middlewares that run in async mode (Django's then hand each hook to a thread)."""
    found, node = [], chain
    while node is not None:
        if isinstance(node, SyncToAsync | AsyncToSync):
            found.append(type(node).__name__)
            node = node.func if isinstance(node, SyncToAsync) else node.awaitable
            continue
        if hasattr(node, "get_response") and iscoroutinefunction(node):
            found.append(f"async {type(node).__name__}")
        node = getattr(node, "get_response", None) or getattr(node, "__wrapped__", None)
    return found


def test_under_asgi_the_middleware_chain_runs_in_one_thread():
    """Into a thread once for the whole chain and back to the event loop once for the
    view; a sync-only middleware above async-capable ones would put those in async mode,
    and each of their hooks would then go to a thread of its own."""
    assert _thread_hand_offs(ASGIHandler()._middleware_chain) == ["SyncToAsync", "AsyncToSync"]
