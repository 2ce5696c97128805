"""Who may do what: every route of the URL conf and every websocket route, for each of
anonymous, a bad token, customer A (alice, who owns the order), customer B (bob) and
staff, in one table each. Another customer's order is a 404, never a 403.

Elsewhere, not repeated here: the scraper's bearer token opening /metrics
(tests/platform_core/operations/test_metrics.py) and start-up refusing a placeholder or
short SECRET_KEY outside DEBUG (tests/architecture/test_secret_key.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from tests.orders.test_api_orders import order_body
from tests.platform_core.live.websocket_support import (
    FOREIGN_ORIGIN,
    GOOD_ORIGIN,
    converse,
    is_refused,
    open_socket,
    session_auth,
    token_auth,
)
from tests.platform_core.web.endpoint_support import (
    World,
    assert_json_error,
    build_world,
    token_client,
)

pytestmark = pytest.mark.django_db(transaction=True)

WHO = ("anonymous", "bad-token", "customer-a", "customer-b", "staff")
BAD_TOKEN = "Token 0123456789abcdef0123456789abcdef01234567"


@dataclass(frozen=True)
class Route:
    name: str  # the URL conf's name ("admin" for the admin site)
    method: str
    path: str  # {order} and {shipment} are the world's
    answers: tuple[int, int, int, int, int]  # in the order of WHO
    body: dict[str, Any] | None = None


ROUTES = [
    Route("auth-token", "POST", "/api/auth/token/", (200, 200, 200, 200, 200),
          {"username": "alice", "password": "alice-pass-123"}),
    Route("product-list", "GET", "/api/products/", (200, 401, 200, 200, 200)),
    Route("product-list", "POST", "/api/products/", (401, 401, 403, 403, 202),
          {"sku": "NEW-1", "name": "New", "price": "1.00", "initial_stock": 1}),
    Route("product-restock", "POST", "/api/products/MUG-1/restock/", (401, 401, 403, 403, 202),
          {"quantity": 1}),
    Route("order-list", "GET", "/api/orders/", (401, 401, 200, 200, 200)),
    Route("order-list", "POST", "/api/orders/", (401, 401, 202, 202, 202), order_body()),
    Route("order-detail", "GET", "/api/orders/{order}/", (401, 401, 200, 404, 200)),
    Route("order-cancel", "POST", "/api/orders/{order}/cancel/", (401, 401, 202, 404, 202),
          {"reason": "not needed"}),
    Route("order-events", "GET", "/api/orders/{order}/events/", (401, 401, 200, 404, 200)),
    Route("shipment-dispatch", "POST", "/api/shipments/{shipment}/dispatch/",
          (401, 401, 403, 403, 202)),
    # Staff may; the shipment refuses to be delivered before it is dispatched.
    Route("shipment-deliver", "POST", "/api/shipments/{shipment}/deliver/",
          (401, 401, 403, 403, 409)),
    Route("fulfillment-overview", "GET", "/api/overview/", (401, 401, 403, 403, 200)),
    Route("schema", "GET", "/api/schema/", (200, 200, 200, 200, 200)),
    Route("api-docs", "GET", "/api/docs/", (200, 200, 200, 200, 200)),
    Route("admin", "GET", "/admin/", (302, 302, 302, 302, 200)),
    Route("home", "GET", "/", (302, 302, 302, 302, 302)),
    Route("login", "GET", "/accounts/login/", (200, 200, 302, 302, 302)),
    Route("logout", "POST", "/accounts/logout/", (302, 302, 302, 302, 302)),
    Route("board", "GET", "/board/", (302, 302, 200, 200, 200)),
    Route("board-order", "GET", "/board/orders/{order}/", (302, 302, 200, 404, 200)),
    Route("healthz", "GET", "/healthz", (200, 200, 200, 200, 200)),
    Route("readyz", "GET", "/readyz", (200, 200, 200, 200, 200)),
    # Only the scraper's bearer token opens it (test_metrics.py), staff's session or not.
    Route("metrics", "GET", "/metrics", (401, 401, 401, 401, 401)),
]  # fmt: skip

CELLS = [(route, who) for route in ROUTES for who in WHO]


@pytest.fixture
def world(catalog, customer, platform_runtime, project, settings) -> World:
    settings.METRICS_TOKEN = "scrape-secret"
    return build_world(platform_runtime, customer, project)


@pytest.fixture
def clients(customer, other_customer, staff_user) -> dict[str, APIClient]:
    """Each identity with both credentials a client of its kind has: an API token and
    (for the pages and the admin) a browser session."""
    bad = APIClient(SERVER_NAME="localhost")
    bad.credentials(HTTP_AUTHORIZATION=BAD_TOKEN)
    clients = {"anonymous": token_client(None), "bad-token": bad}
    for who, user in (("customer-a", customer), ("customer-b", other_customer)):
        clients[who] = token_client(user)
    clients["staff"] = token_client(staff_user)
    for who, user in (("customer-a", customer), ("customer-b", other_customer)):
        clients[who].force_login(user)
    clients["staff"].force_login(staff_user)
    return clients


@pytest.mark.parametrize(
    ("route", "who"), CELLS, ids=[f"{r.method}-{r.name}-{w}" for r, w in CELLS]
)
def test_each_identity_gets_its_answer_from_each_route(world, clients, route, who):
    path = route.path.format(order=world.order_id, shipment=world.shipment_id)
    expected = route.answers[WHO.index(who)]

    if route.method == "GET":
        response = clients[who].get(path)
    else:
        response = clients[who].post(path, route.body, format="json")

    assert response.status_code == expected, response.content[:300]
    if expected >= 400 and path != "/metrics":
        assert_json_error(response, expected)


def _route_names(patterns: list[Any]) -> set[str]:
    names = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            names |= {pattern.app_name} if pattern.app_name else _route_names(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            names.add(pattern.name)
    return names


def test_the_table_covers_every_route_of_the_url_conf():
    assert _route_names(get_resolver().url_patterns) == {route.name for route in ROUTES}


# --------------------------------------------------------------------------- websockets

ORDER_SOCKETS = ("/ws/orders/", "/ws/orders/{order}/")
SOCKET_ANSWERS = {  # accepted?, for the list and for alice's order
    "anonymous": (False, False),
    "bad-token": (False, False),
    "customer-a": (True, True),
    "customer-b": (True, False),
    "staff": (True, True),
}


def assert_sockets(world: World, headers: list[Any], accepted: tuple[bool, bool]) -> None:
    """Whether the list and alice's order accept a handshake with `headers`."""

    async def scenario() -> None:
        for path, expected in zip(ORDER_SOCKETS, accepted, strict=True):
            path = path.format(order=world.order_id)
            if expected:
                await (await open_socket(path, headers)).disconnect()
            else:
                assert await is_refused(path, headers), f"{headers} opened {path}"

    converse(scenario)


def _handshake(who: str, users: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    if who == "anonymous":
        return [(b"origin", GOOD_ORIGIN.encode())]
    if who == "bad-token":
        return [(b"authorization", BAD_TOKEN.encode())]
    return token_auth(users[who])


@pytest.mark.parametrize("who", WHO)
def test_each_identity_may_follow_what_it_may_see(world, customer, other_customer, staff_user, who):
    users = {"customer-a": customer, "customer-b": other_customer, "staff": staff_user}
    headers = _handshake(who, users)

    assert_sockets(world, headers, SOCKET_ANSWERS[who])


@pytest.mark.parametrize(
    ("credential", "origin", "accepted"),
    [
        ("session", GOOD_ORIGIN, True),
        ("session", None, False),
        ("session", FOREIGN_ORIGIN, False),
        ("session", "http://localhost:8001", False),
        ("session", "https://localhost:8000", False),
        ("session", "http://localhost", False),
        ("token", None, True),
        ("token", GOOD_ORIGIN, True),
        ("token", FOREIGN_ORIGIN, False),
        ("token", "http://localhost:8001", False),
    ],
)
def test_a_websocket_needs_its_own_origin_port_included(
    world, customer, credential, origin, accepted
):
    auth = session_auth if credential == "session" else token_auth
    headers = auth(customer, origin=origin)

    assert_sockets(world, headers, (accepted, accepted))
