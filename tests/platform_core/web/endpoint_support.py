"""What the security tests of the HTTP edge share: a small world (a catalog, an order of
alice's, a booked shipment), clients for each identity, and every write endpoint with a
body it accepts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from platform_core.models import OutboxMessage, StoredEvent
from platform_core.runtime import Runtime
from shipping.commands import CreateShipment
from shipping.events import Address
from tests.orders.test_api_orders import ADDRESS, order_body, place_order

SHIPMENT = "SHP-1"


@dataclass(frozen=True)
class World:
    order_id: UUID  # alice's
    shipment_id: str


def build_world(runtime: Runtime, alice: Any, project: Callable[[], None]) -> World:
    """Needs the `catalog` fixture (MUG-1 and TEA-2 in stock)."""
    order_id = uuid4()
    runtime.bus.handle(place_order(order_id, alice.pk))
    runtime.bus.handle(
        CreateShipment(order_id=order_id, shipment_id=SHIPMENT, address=Address(**ADDRESS))
    )
    project()
    return World(order_id=order_id, shipment_id=SHIPMENT)


def token_client(user: Any | None) -> APIClient:
    """A client that authenticates as `user` the way API clients do, with its token."""
    client = APIClient(SERVER_NAME="localhost")
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@dataclass(frozen=True)
class WriteEndpoint:
    """A write endpoint, who may call it and a body it accepts (None: it takes none)."""

    name: str
    path: Callable[[World], str]
    caller: str  # "customer", "staff" or "anonymous"
    valid_body: dict[str, Any]

    def __str__(self) -> str:
        return self.name


WRITE_ENDPOINTS = [
    WriteEndpoint("place-order", lambda w: "/api/orders/", "customer", order_body()),
    WriteEndpoint(
        "cancel-order",
        lambda w: f"/api/orders/{w.order_id}/cancel/",
        "customer",
        {"reason": "changed my mind"},
    ),
    WriteEndpoint(
        "obtain-token",
        lambda w: "/api/auth/token/",
        "anonymous",
        {"username": "alice", "password": "alice-pass-123"},
    ),
    WriteEndpoint(
        "register-product",
        lambda w: "/api/products/",
        "staff",
        {"sku": "NEW-1", "name": "New", "price": "2.50", "initial_stock": 5},
    ),
    WriteEndpoint(
        "restock-product", lambda w: "/api/products/MUG-1/restock/", "staff", {"quantity": 5}
    ),
    WriteEndpoint(
        "dispatch-shipment", lambda w: f"/api/shipments/{w.shipment_id}/dispatch/", "staff", {}
    ),
    WriteEndpoint(
        "deliver-shipment", lambda w: f"/api/shipments/{w.shipment_id}/deliver/", "staff", {}
    ),
]


def appended_rows() -> tuple[int, int]:
    """Rows in the event store and the outbox: a refused request adds to neither."""
    return StoredEvent.objects.count(), OutboxMessage.objects.count()


def assert_json_error(response: Any, status: int | None = None) -> dict[str, Any]:
    """A 4xx (or exactly `status`) in the project's error format; the error."""
    if status is None:
        assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    else:
        assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    return dict(error)
