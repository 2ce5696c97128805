"""The OpenAPI document says what the platform's HTTP edge answers and what input it takes
(tests/e2e/test_openapi_conformance.py checks the running API against it)."""

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

ERROR = {"$ref": "#/components/schemas/Error"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def statuses(document: dict[str, Any], path: str, method: str) -> set[str]:
    return set(document["paths"][path][method]["responses"])


def component(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["components"]["schemas"][name]


@pytest.mark.parametrize(
    ("path", "method", "expected"),
    [
        # No authentication at all: a stale Authorization header is no 401 here.
        ("/api/auth/token/", "post", {"200", "400", "406", "413", "415", "429"}),
        ("/api/orders/", "get", {"200", "400", "401", "404", "406", "503"}),
        ("/api/orders/", "post", {"202", "400", "401", "403", "406", "409", "413", "415", "429"}),
        ("/api/orders/{order_id}/", "get", {"200", "400", "401", "404", "406", "503"}),
        ("/api/orders/{order_id}/events/", "get", {"200", "401", "404", "406"}),
        (
            "/api/orders/{order_id}/cancel/",
            "post",
            {"202", "400", "401", "403", "404", "406", "409", "413", "415"},
        ),
        ("/api/products/", "get", {"200", "400", "401", "404", "406", "503"}),
        ("/api/products/", "post", {"202", "400", "401", "403", "406", "409", "413", "415"}),
        (
            "/api/shipments/{shipment_id}/dispatch/",
            "post",
            {"202", "401", "403", "404", "406", "409"},
        ),
        ("/api/overview/", "get", {"200", "401", "403", "406"}),
    ],
)
def test_each_operation_declares_the_statuses_it_can_answer(document, path, method, expected):
    assert statuses(document, path, method) == expected


def test_every_error_status_answers_the_error_body(document):
    errors = [
        response
        for operation in document["paths"].values()
        for method in operation.values()
        for status, response in method["responses"].items()
        if status >= "400"
    ]

    assert errors
    assert all(error["content"]["application/json"]["schema"] == ERROR for error in errors)
    body = component(document, "ErrorBody")
    assert body["required"] == ["code", "message"]
    assert component(document, "Error")["properties"]["error"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }


def test_a_busy_read_says_when_to_retry(document):
    busy = document["paths"]["/api/orders/{order_id}/"]["get"]["responses"]["503"]

    assert "Retry-After" in busy["headers"]


def test_a_merged_view_describes_each_method_by_its_own_view(document):
    orders = document["paths"]["/api/orders/"]

    assert orders["get"]["description"].startswith("Orders, newest first")
    assert orders["post"]["description"].startswith("Place an order")


def test_log_positions_have_their_pattern_and_only_reads_take_them(document):
    def parameters(path: str, method: str) -> dict[str, Any]:
        listed = document["paths"][path][method].get("parameters", [])
        return {parameter["name"]: parameter for parameter in listed}

    reads = parameters("/api/orders/", "get")

    assert reads["min_position"]["schema"]["pattern"] == r"^[0-9]+\.[0-9]+$"
    assert reads["X-Min-Log-Position"]["schema"]["pattern"] == r"^[0-9]+\.[0-9]+$"
    assert "min_position" not in parameters("/api/orders/", "post")
    assert reads["status"]["schema"]["enum"] == [
        "pending",
        "confirmed",
        "shipped",
        "delivered",
        "cancelled",
    ]
    assert reads["customer"]["schema"]["minimum"] == 1
    assert reads["page"]["schema"]["minimum"] == 1


def test_order_input_carries_its_constraints(document):
    order = component(document, "OrderPlaceInput")["properties"]
    address = component(document, "OrderPlaceAddress")["properties"]
    item = component(document, "OrderPlaceItem")["properties"]

    assert (order["items"]["minItems"], order["items"]["maxItems"]) == (1, 100)
    assert order["payment_token"]["minLength"] == 1
    assert order["payment_token"]["pattern"] == r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    assert (item["quantity"]["minimum"], item["quantity"]["maximum"]) == (1, 10_000)
    assert address["country"]["pattern"] == "^[A-Z]{2}$"
    # line2 may be blank: "" or a string without NUL, never both branches at once.
    assert address["line2"]["oneOf"][1] == {"type": "string", "maxLength": 0}


def test_a_price_is_a_plain_positive_decimal(document):
    price = component(document, "ProductRegisterInput")["properties"]["price"]

    assert price["type"] == "string"
    assert price["pattern"] == (
        r"^(?:[1-9][0-9]{0,9}(?:\.[0-9]{1,2})?|0\.(?:[1-9][0-9]{0,1}|0[1-9]))$"
    )


def test_the_document_links_a_placed_order_to_where_to_follow_it(document):
    placed = document["paths"]["/api/orders/"]["post"]["responses"]["202"]["links"]

    assert placed["GetOrder"] == {
        "operationId": "orders_retrieve",
        "parameters": {
            "order_id": "$response.body#/id",
            "min_position": "$response.body#/log_position",
        },
    }
    assert {link["operationId"] for link in placed.values()} == {
        "orders_retrieve",
        "orders_cancel_create",
        "orders_events_list",
    }


def test_logging_in_needs_no_credentials(document):
    assert {} in document["paths"]["/api/auth/token/"]["post"]["security"]
