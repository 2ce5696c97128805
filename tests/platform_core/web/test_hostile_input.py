"""Hostile request bodies on every write endpoint: each is a 4xx JSON error in the
project's format and appends nothing to the event store or the outbox.

Hypothesis generates bodies from each endpoint's valid one (a field of the wrong type or
holding NUL or a lone surrogate, a required field missing, an unknown key) and arbitrary
JSON and bytes; it runs derandomized, so every run tries the same bodies. The explicit
cases below name the attacks one by one. Nesting 10,000 deep and wrong content types are
in test_api_http.py; a real Daphne process under huge bodies in test_under_daphne.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.orders.test_api_orders import ORDERS, order_body
from tests.platform_core.web.endpoint_support import (
    WRITE_ENDPOINTS,
    World,
    WriteEndpoint,
    appended_rows,
    assert_json_error,
    build_world,
    token_client,
)

pytestmark = pytest.mark.django_db(transaction=True)

GENERATED = settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    # The fixtures build a world the refused requests must leave as it is: shared on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def world(catalog, customer, platform_runtime, project) -> World:
    return build_world(platform_runtime, customer, project)


@pytest.fixture
def clients(customer, staff_user) -> dict[str, Any]:
    return {
        "customer": token_client(customer),
        "staff": token_client(staff_user),
        "anonymous": token_client(None),
    }


def post(clients: dict[str, Any], endpoint: WriteEndpoint, world: World, body: Any, **extra):
    path = endpoint.path(world)
    client = clients[endpoint.caller]
    if isinstance(body, bytes):
        return client.post(path, body, content_type="application/json", **extra)
    return client.post(path, json.dumps(body), content_type="application/json", **extra)


def assert_refused(response, before: tuple[int, int], status: int | None = None) -> dict[str, Any]:
    error = assert_json_error(response, status)
    assert appended_rows() == before, "a refused request appended events or messages"
    return error


# --------------------------------------------------------------------------- generated

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
# Text Django and DRF refuse in any string field: NUL, or a UTF-16 surrogate on its own.
POISONED_TEXT = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.text(max_size=10),
    st.sampled_from(["\x00", "\ud800", "\udfff"]),
    st.text(max_size=10),
)


def wrong_value(valid: Any) -> st.SearchStrategy[Any]:
    """A value no field that accepts `valid` takes."""
    if isinstance(valid, str):
        return POISONED_TEXT | JSON.filter(lambda v: not isinstance(v, str))
    if isinstance(valid, bool | int):
        # Quantities and stock: never negative, never beyond a million, never a float.
        out_of_range = st.integers(max_value=-1) | st.integers(min_value=10**7)
        return out_of_range | JSON.filter(lambda v: isinstance(v, bool) or not isinstance(v, int))
    return JSON.filter(lambda v: not isinstance(v, type(valid)))


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*path, key))]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, (*path, i))]
    return [path]


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replaced(value[head], rest, new)}
    return [_replaced(item, rest, new) if i == head else item for i, item in enumerate(value)]


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def hostile_body(draw: st.DrawFn, valid: dict[str, Any]) -> Any:
    """`valid` spoilt one way: a leaf replaced by a wrong value, a required field
    dropped, an unknown key added, or the whole body replaced by a non-object."""
    spoilers = ["unknown-key", "not-an-object"]
    if valid:
        spoilers += ["wrong-leaf", "missing-field"]
    how = draw(st.sampled_from(spoilers))
    if how == "wrong-leaf":
        leaf = draw(st.sampled_from(_leaves(valid)))
        return _replaced(valid, leaf, draw(wrong_value(_at(valid, leaf))))
    if how == "missing-field":
        dropped = draw(st.sampled_from(sorted(valid)))
        return {key: value for key, value in valid.items() if key != dropped}
    if how == "unknown-key":
        key = draw(st.text(max_size=12).filter(lambda k: k not in valid))
        return {**valid, key: draw(JSON)}
    return draw(JSON.filter(lambda v: not isinstance(v, dict)))


@pytest.mark.parametrize("endpoint", WRITE_ENDPOINTS, ids=str)
def test_generated_hostile_bodies_are_refused_with_a_json_error(world, clients, endpoint):
    @GENERATED
    @given(body=hostile_body(endpoint.valid_body))
    def check(body: Any) -> None:
        before = appended_rows()
        assert_refused(post(clients, endpoint, world, body), before, 400)

    check()


@pytest.mark.parametrize("endpoint", [e for e in WRITE_ENDPOINTS if e.valid_body], ids=str)
def test_generated_bytes_are_refused_with_a_json_error(world, clients, endpoint):
    """Any bytes as a JSON body: malformed, not UTF-8, or JSON short of a valid body."""

    @GENERATED
    @given(body=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
    def check(body: bytes) -> None:
        before = appended_rows()
        assert_refused(post(clients, endpoint, world, body), before, 400)

    check()


def test_the_valid_bodies_are_accepted(world, clients):
    """The bodies the generated ones spoil are accepted as they are (else the tests above
    would prove nothing)."""
    for endpoint in WRITE_ENDPOINTS:
        response = post(clients, endpoint, world, endpoint.valid_body)
        assert response.status_code in (200, 202), (endpoint.name, response.content)


# --------------------------------------------------------------------------- one by one

LONG_QUANTITY = "1" + "0" * 5000  # past Python's 4300-digit limit on int("...")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"items": [', "parse_error"),
        (b'{"items": NaN}', "parse_error"),
        (json.dumps(order_body()).replace("2}", "NaN}").encode(), "parse_error"),
        (json.dumps(order_body()).replace("2}", "Infinity}").encode(), "parse_error"),
        (json.dumps(order_body()).replace("2}", "1e400}").encode(), "invalid"),
        (json.dumps(order_body()).replace("2}", f"{LONG_QUANTITY}}}").encode(), "parse_error"),
        (json.dumps(order_body(("MUG-1", 10**30))).encode(), "invalid"),
        (json.dumps(order_body(("MUG-1", -1))).encode(), "invalid"),
        (json.dumps(order_body(("MUG-1", 1.5))).encode(), "invalid"),
        (json.dumps({**order_body(), "payment_token": "tok_visa\x00"}).encode(), "invalid"),
        (json.dumps(order_body()).replace("tok_visa", "tok\x00visa").encode(), "parse_error"),
        (json.dumps({**order_body(), "payment_token": "tok_\ud800"}).encode(), "invalid"),
        (json.dumps(order_body()).replace("Ada", "\xed\xa0\x80").encode("latin-1"), "parse_error"),
        (json.dumps(order_body()).replace("Ada", "Ad\xe9").encode("latin-1"), "parse_error"),
        (json.dumps({**order_body(), "payment_token": "x" * 200_000}).encode(), "invalid"),
        (json.dumps({**order_body(), "id": "0" * 32}).encode(), "invalid"),
        (json.dumps({**order_body(), "status": "confirmed"}).encode(), "invalid"),
        (json.dumps({**order_body(), "paymenttoken": "tok_visa"}).encode(), "invalid"),
        (b"\xef\xbb\xbf" + json.dumps(order_body()).encode(), "parse_error"),
        (b"", "invalid"),
    ],
    ids=[
        "malformed",
        "nan-as-body-value",
        "nan-quantity",
        "infinite-quantity",
        "overflowing-float-quantity",
        "5000-digit-quantity",
        "huge-quantity",
        "negative-quantity",
        "float-quantity",
        "escaped-nul",
        "raw-nul-byte",
        "escaped-lone-surrogate",
        "utf8-encoded-surrogate",
        "latin-1-byte",
        "200-kb-string",
        "read-only-id",
        "read-only-status",
        "unknown-field",
        "byte-order-mark",
        "empty-body",
    ],
)
def test_a_hostile_order_is_refused_and_appends_nothing(world, clients, body, code):
    before = appended_rows()

    response = clients["customer"].post(ORDERS, body, content_type="application/json")

    assert assert_refused(response, before, 400)["code"] == code


def test_an_unknown_field_is_named_in_the_error(world, clients):
    body = {
        **order_body(),
        "status": "confirmed",
        "items": [{"sku": "MUG-1", "quantity": 1, "x": 1}],
    }

    error = assert_json_error(clients["customer"].post(ORDERS, body, format="json"), 400)

    assert error["details"] == {
        "items": {"0": {"x": ["Unknown field."]}},
        "status": ["Unknown field."],
    }


@pytest.mark.parametrize("charset", ["utf-16", "latin-1", "iso-8859-1", "klingon", "utf-32", ""])
def test_json_in_a_charset_other_than_utf8_is_an_unsupported_media_type(world, clients, charset):
    before = appended_rows()
    encoding = charset if charset in ("utf-16", "latin-1", "iso-8859-1", "utf-32") else "utf-8"
    body = json.dumps(order_body()).encode(encoding)

    response = clients["customer"].post(
        ORDERS, body, content_type=f"application/json; charset={charset}"
    )

    assert assert_refused(response, before, 415)["code"] == "unsupported_media_type"


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8"])
def test_json_declared_as_utf8_is_accepted(world, clients, charset):
    response = clients["customer"].post(
        ORDERS, json.dumps(order_body()), content_type=f"application/json; charset={charset}"
    )

    assert response.status_code == 202


@pytest.mark.parametrize("size", [1 << 20, 10 << 20])
@pytest.mark.parametrize("endpoint", WRITE_ENDPOINTS, ids=str)
def test_a_body_of_a_megabyte_or_more_is_too_large(world, clients, endpoint, size):
    before = appended_rows()
    body = json.dumps({**endpoint.valid_body, "padding": "x" * size}).encode()

    response = post(clients, endpoint, world, body)

    assert assert_refused(response, before, 413)["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        ("restock-product", "/api/products/MUG%001/restock/"),
        ("restock-product", "/api/products/%ED%A0%80/restock/"),
        ("restock-product", f"/api/products/{'A' * 5000}/restock/"),
        ("dispatch-shipment", "/api/shipments/SHP%001/dispatch/"),
        ("deliver-shipment", "/api/shipments/%FF/deliver/"),
        ("cancel-order", "/api/orders/not-a-uuid/cancel/"),
    ],
)
def test_a_hostile_path_parameter_is_not_found(world, clients, endpoint, path):
    before = appended_rows()
    target = next(e for e in WRITE_ENDPOINTS if e.name == endpoint)

    response = clients[target.caller].post(path, target.valid_body, format="json")

    assert_refused(response, before, 404)
