"""Live order updates over websockets, driven through the real ASGI application.

Each test sets up users and read-model rows synchronously, then runs its websocket
conversation in an event loop (`converse`). Rows reach clients through `announce_orders`,
called from a plain thread as the projector calls it, or through the projector itself.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings

from config import settings as config_settings
from config.asgi import application
from projections.live import announce_orders
from tests.platform_core.live.websocket_support import (
    WAIT,
    StalledClient,
    announce_from_thread,
    closed_with,
    converse,
    open_socket,
    place,
    place_over_api,
    received_order_ids,
    rows,
    session_auth,
    token_auth,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("in_memory_channel_layer"),
]


def test_a_customer_sees_only_their_own_orders_and_staff_see_all(
    customer, other_customer, staff_user
):
    bobs, alices = place(other_customer, 1, 1), place(customer, 1, 2)
    changed = rows(bobs, alices)
    alice, bob, staff = token_auth(customer), token_auth(other_customer), token_auth(staff_user)

    async def scenario() -> None:
        sockets = [await open_socket("/ws/orders/", h) for h in (alice, bob, staff)]
        # Bob's order comes first in the log and goes out first: a connection's frames
        # arrive in order, so Alice's first frame being her own proves Bob's never reached her.
        await announce_from_thread(changed)
        assert await received_order_ids(sockets[0], 1) == [str(alices.id)]
        assert await received_order_ids(sockets[1], 1) == [str(bobs.id)]
        assert await received_order_ids(sockets[2], 2) == [str(bobs.id), str(alices.id)]
        for socket in sockets:
            await socket.disconnect()

    converse(scenario)


def test_following_an_order_starts_with_what_the_rest_api_returns(customer, customer_client):
    order = place(customer, 3, 7)
    expected = customer_client.get(f"/api/orders/{order.id}/").json()
    headers = session_auth(customer)

    async def scenario() -> None:
        socket = await open_socket(f"/ws/orders/{order.id}/", headers)
        frame = await socket.receive_json_from(timeout=WAIT)
        assert frame == {"type": "order.updated", "order": expected, "position": "3.7"}
        await socket.disconnect()

    converse(scenario)


def test_resuming_delivers_exactly_the_orders_changed_after_the_position(customer, other_customer):
    place(customer, 1, 9)  # an older transaction, though a larger position
    place(customer, 2, 5)  # the position itself
    later, latest = place(customer, 2, 6), place(customer, 3, 1)
    place(other_customer, 4, 1)  # not hers
    live = rows(place(customer, 5, 1))
    headers = token_auth(customer)

    async def scenario() -> None:
        socket = await open_socket("/ws/orders/?after=2.5", headers)
        assert await received_order_ids(socket, 2) == [str(later.id), str(latest.id)]
        # The backlog is sent whole before live frames, so a live frame next means it is over.
        await announce_from_thread(live)
        assert await received_order_ids(socket, 1) == [str(live[0]["id"])]
        await socket.disconnect()

    converse(scenario)


def test_an_invalid_resume_position_closes_with_4400(customer):
    headers = token_auth(customer)

    async def scenario() -> None:
        socket = await open_socket("/ws/orders/?after=yesterday", headers)
        assert await closed_with(socket) == 4400

    converse(scenario)


def test_an_oversized_incoming_frame_closes_with_4009(customer):
    headers = token_auth(customer)

    async def scenario() -> None:
        socket = await open_socket("/ws/orders/", headers)
        await socket.send_json_to({"type": "ping"})
        assert await socket.receive_json_from(timeout=WAIT) == {"type": "pong"}
        await socket.send_to(text_data="x" * (django_settings.WEBSOCKET_MAX_INCOMING_BYTES + 1))
        assert await closed_with(socket) == 4009

    converse(scenario)


def test_an_order_too_large_for_a_frame_is_sent_as_its_id(customer, settings):
    settings.WEBSOCKET_MAX_FRAME_BYTES = 200
    order = place(customer, 1, 1)
    headers = token_auth(customer)

    async def scenario() -> None:
        socket = await open_socket(f"/ws/orders/{order.id}/", headers)
        frame = await socket.receive_json_from(timeout=WAIT)
        assert frame == {
            "type": "order.updated",
            "order": {"id": str(order.id)},
            "position": "1.1",
            "truncated": True,
        }
        await socket.disconnect()

    converse(scenario)


def test_a_client_too_far_behind_is_closed_with_4008(staff_user, customer, settings):
    settings.WEBSOCKET_BUFFER_LIMIT = 2
    changed = rows(*[place(customer, 1, position) for position in range(1, 5)])
    headers = token_auth(staff_user)

    async def scenario() -> None:
        client = StalledClient(application)
        socket = WebsocketCommunicator(client, "/ws/orders/", headers=headers)
        assert (await socket.connect(timeout=WAIT))[0]
        # Four distinct orders against a limit of two: whichever one the sender has taken
        # and is stuck sending, three are left pending.
        await announce_from_thread(changed)
        assert await closed_with(socket) == 4008

    converse(scenario)


def test_announcing_from_a_plain_thread_reaches_a_consumer(staff_user, customer):
    order = place(customer, 1, 1)
    changed = rows(order)
    headers = token_auth(staff_user)

    async def scenario() -> None:
        socket = await open_socket("/ws/orders/", headers)
        projector = threading.Thread(target=announce_orders, args=(changed,))
        projector.start()
        await asyncio.to_thread(projector.join)
        frame = await socket.receive_json_from(timeout=WAIT)
        assert (frame["order"]["id"], frame["position"]) == (str(order.id), "1.1")
        await socket.disconnect()

    converse(scenario)


def test_an_order_placed_over_the_api_reaches_its_owner_once_projected(
    catalog, customer, other_customer, customer_client, other_client, project
):
    alice, bob = token_auth(customer), token_auth(other_customer)

    async def scenario() -> None:
        alices, bobs = (
            await open_socket("/ws/orders/", alice),
            await open_socket("/ws/orders/", bob),
        )
        placed = await sync_to_async(place_over_api)(customer_client)
        await sync_to_async(project)()
        frame = await alices.receive_json_from(timeout=WAIT)
        shown = await sync_to_async(customer_client.get)(f"/api/orders/{placed['id']}/")
        assert frame == {
            "type": "order.updated",
            "order": shown.json(),
            "position": placed["log_position"],
        }
        # Bob's own order comes later in the log, so it being his first frame proves
        # Alice's never reached him.
        his = await sync_to_async(place_over_api)(other_client)
        await sync_to_async(project)()
        assert await received_order_ids(bobs, 1) == [his["id"]]
        for socket in (alices, bobs):
            await socket.disconnect()

    converse(scenario)


@pytest.fixture
def redis_channel_layer(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The deployment's Redis channel layer under a prefix of this test's own (its keys
    removed after; the layer's own flush would close connections that live on the sender's
    loop)."""
    prefix = f"test-ws-{uuid.uuid4().hex}"
    # What settings.py chose for Redis (the tests' conftest puts the in-memory layer in).
    deployed = config_settings.CHANNEL_LAYERS["default"]
    assert deployed["BACKEND"] == "platform_core.live.pubsub.PubSubChannelLayer", deployed
    settings.CHANNEL_LAYERS = {
        "default": {**deployed, "CONFIG": {**deployed["CONFIG"], "prefix": prefix}}
    }
    yield
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.mark.redis
def test_updates_travel_through_the_redis_channel_layer(redis_channel_layer, staff_user, customer):
    order = place(customer, 1, 1)
    changed = rows(order)
    headers = token_auth(staff_user)

    async def scenario() -> None:
        socket = await open_socket("/ws/orders/", headers)
        await announce_from_thread(changed)
        assert await received_order_ids(socket, 1) == [str(order.id)]
        await socket.disconnect()

    converse(scenario)
