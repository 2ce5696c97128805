"""Who may open a live-updates websocket: tokens, browser sessions with their Origin,
and nobody else; a customer only for their own orders."""

from __future__ import annotations

import uuid

import pytest

from tests.platform_core.live.websocket_support import (
    FOREIGN_ORIGIN,
    GOOD_ORIGIN,
    converse,
    is_refused,
    open_socket,
    origin_header,
    place,
    session_auth,
    token_auth,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("in_memory_channel_layer"),
]


def test_a_client_with_a_token_and_no_origin_is_accepted(customer):
    headers = token_auth(customer)

    async def scenario() -> None:
        socket = await open_socket("/ws/orders/", headers)
        await socket.disconnect()

    converse(scenario)


def test_a_token_with_a_foreign_origin_or_an_unknown_token_is_refused(customer):
    foreign = token_auth(customer, origin=FOREIGN_ORIGIN)
    unknown = [(b"authorization", b"Token not-a-token")]

    async def scenario() -> None:
        assert await is_refused("/ws/orders/", foreign)
        assert await is_refused("/ws/orders/", unknown)

    converse(scenario)


def test_a_browser_session_from_an_allowed_origin_is_accepted(customer):
    headers = session_auth(customer)

    async def scenario() -> None:
        socket = await open_socket("/ws/orders/", headers)
        await socket.disconnect()

    converse(scenario)


def test_a_session_without_origin_or_from_a_foreign_origin_is_refused(customer):
    no_origin = session_auth(customer, origin=None)
    foreign = session_auth(customer, origin=FOREIGN_ORIGIN)

    async def scenario() -> None:
        assert await is_refused("/ws/orders/", no_origin)
        assert await is_refused("/ws/orders/", foreign)

    converse(scenario)


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:9999",
        "https://localhost:8000",
        "http://127.0.0.1:8000",
        "http://localhost",
    ],
)
def test_a_session_from_our_host_on_another_port_or_scheme_is_refused(customer, origin):
    headers = session_auth(customer, origin=origin)

    async def scenario() -> None:
        assert await is_refused("/ws/orders/", headers)

    converse(scenario)


def test_a_session_from_a_trusted_origin_of_another_port_is_accepted(customer, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["http://localhost:3000"]
    headers = session_auth(customer, origin="http://localhost:3000")

    async def scenario() -> None:
        socket = await open_socket("/ws/orders/", headers)
        await socket.disconnect()

    converse(scenario)


def test_an_anonymous_client_is_refused():
    async def scenario() -> None:
        assert await is_refused("/ws/orders/", origin_header(GOOD_ORIGIN))
        assert await is_refused(f"/ws/orders/{uuid.uuid4()}/", [])

    converse(scenario)


def test_a_customer_cannot_follow_another_customers_order(customer, other_customer):
    bobs = place(other_customer, 1, 1)
    alice = token_auth(customer)

    async def scenario() -> None:
        assert await is_refused(f"/ws/orders/{bobs.id}/", alice)

    converse(scenario)
