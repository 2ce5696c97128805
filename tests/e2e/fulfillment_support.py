"""Driving the whole system in one process: place orders over HTTP, then let the outbox
relay, consumer groups, eager Celery commands and projections run until nothing moves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from config.celery import app
from inventory.commands import RegisterProduct
from payments.gateway import FakeGateway
from platform_core.models import SagaInstance
from platform_core.runtime import Runtime
from tests.support import newest_stored

ADDRESS = {"name": "Ada", "line1": "1 Road", "city": "Leeds", "postal_code": "LS1", "country": "GB"}


@contextmanager
def eager_commands() -> Iterator[None]:
    """Celery commands run in-process after commit, as under `make run`."""
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = before


def settle(runtime: Runtime, seconds: float = 20.0) -> None:
    """Relay, consume and project until the outbox is empty and every projection has
    read the newest stored event (on PostgreSQL an event becomes readable only once
    older transactions on the server end, so "nothing moved" alone is not enough)."""
    deadline = time.monotonic() + seconds
    while True:
        moved = runtime.relay.drain() + runtime.projections.catch_up()
        if not moved and _settled(runtime):
            return
        assert time.monotonic() < deadline, "the system did not settle"
        if not moved:
            time.sleep(0.01)


def _settled(runtime: Runtime) -> bool:
    newest = newest_stored().position
    projections = runtime.projections
    return runtime.relay.backlog() == 0 and all(
        projections.checkpoint(n).position == newest for n in projections.names
    )


def register(runtime: Runtime, sku: str, stock: int, price: str = "5.00") -> None:
    runtime.bus.handle(
        RegisterProduct(sku=sku, name=sku.title(), price=Decimal(price), initial_stock=stock)
    )


def place(client: Any, sku: str, quantity: int, token: str = "tok_visa") -> str:
    body = {
        "items": [{"sku": sku, "quantity": quantity}],
        "shipping_address": ADDRESS,
        "payment_token": token,
    }
    response = client.post("/api/orders/", body, format="json")
    assert response.status_code == 202, response.content
    return str(response.json()["id"])


def saga_of(order_id: str) -> SagaInstance:
    return SagaInstance.objects.get(saga="order-fulfillment", key=order_id)


def stream(runtime: Runtime, stream_id: str) -> list[Any]:
    return [
        runtime.codec.decode(e.event_type, e.schema_version, e.data)
        for e in runtime.store.read_stream(stream_id)
    ]


def charges(runtime: Runtime, order_id: str) -> int:
    """Money taken for the order, as the gateway counts it (no double charge)."""
    return FakeGateway().charges_captured(order_id)


def refunds(runtime: Runtime, order_id: str) -> int:
    return FakeGateway().refunds_made(order_id)
