"""Shared pieces of the websocket tests: credentials on the handshake, read-model rows as
the projector leaves them, and a conversation with the real ASGI application."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config.asgi import application
from projections.live import announce_orders
from projections.models import OrderSummary
from tests.orders.test_api_orders import order_body

GOOD_ORIGIN = "http://localhost:8000"
HOST = (b"host", b"localhost:8000")  # the handshake's own origin is GOOD_ORIGIN
FOREIGN_ORIGIN = "https://evil.example"
WAIT = 5  # seconds to wait for something that is bound to happen

Headers = list[tuple[bytes, bytes]]


def converse(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run a test's websocket conversation in an event loop (the test itself is sync)."""
    async_to_sync(scenario)()


def token_auth(user: Any, origin: str | None = None) -> Headers:
    token, _ = Token.objects.get_or_create(user=user)
    return [HOST, (b"authorization", f"Token {token.key}".encode()), *origin_header(origin)]


def session_auth(user: Any, origin: str | None = GOOD_ORIGIN) -> Headers:
    browser = Client()
    browser.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    cookie = f"{name}={browser.cookies[name].value}"
    return [HOST, (b"cookie", cookie.encode()), *origin_header(origin)]


def origin_header(origin: str | None) -> Headers:
    return [(b"origin", origin.encode())] if origin else []


def place(customer: Any, tx: int, pos: int) -> OrderSummary:
    """An order as the projector leaves it after the event at log position tx.pos."""
    now = timezone.now()
    return OrderSummary.objects.create(
        id=uuid.uuid4(),
        customer_id=customer.pk,
        status="pending",
        items=[{"sku": "MUG", "name": "Mug", "quantity": 2, "unit_price": "4.75"}],
        total=Decimal("9.50"),
        history=[{"type": "OrderPlaced", "at": now.isoformat()}],
        placed_at=now,
        updated_at=now,
        last_transaction_id=tx,
        last_position=pos,
    )


def rows(*orders: OrderSummary) -> list[dict[str, Any]]:
    """What the projector hands to `announce_orders`, in the given order."""
    by_id = {row["id"]: row for row in OrderSummary.objects.values()}
    return [by_id[order.id] for order in orders]


async def open_socket(path: str, headers: Headers) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, path, headers=headers)
    accepted, _ = await socket.connect(timeout=WAIT)
    assert accepted, f"{path} refused"
    return socket


async def is_refused(path: str, headers: Headers) -> bool:
    socket = WebsocketCommunicator(application, path, headers=headers)
    accepted, _ = await socket.connect(timeout=WAIT)
    await socket.disconnect()
    return not accepted


async def announce_from_thread(changed: list[dict[str, Any]]) -> None:
    await asyncio.to_thread(announce_orders, changed)


async def received_order_ids(socket: WebsocketCommunicator, count: int) -> list[str]:
    frames = [await socket.receive_json_from(timeout=WAIT) for _ in range(count)]
    return [frame["order"]["id"] for frame in frames]


async def closed_with(socket: WebsocketCommunicator) -> int:
    message = await socket.receive_output(timeout=WAIT)
    assert message["type"] == "websocket.close", message
    await socket.disconnect()
    return int(message["code"])


class StalledClient:
    """An ASGI server in front of `app` whose data frames wait until `resume()`: a client
    that stopped reading, behind a server whose send applies backpressure."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._reading = asyncio.Event()

    def resume(self) -> None:
        self._reading.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def stalled_send(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.send":
                await self._reading.wait()
            await send(message)

        await self.app(scope, receive, stalled_send)


def place_over_api(client: APIClient) -> dict[str, Any]:
    body = order_body()
    response = client.post("/api/orders/", body, format="json")
    assert response.status_code == 202, response.content
    return dict(response.json())
