"""What a projector batch pushes: only to groups a connection has joined, and on Redis as
one batch that arrives in order."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from django.conf import settings as django_settings

from platform_core.live.broadcast import listened_groups_from_thread
from platform_core.live.pubsub import PubSubChannelLayer
from projections.live import ALL_ORDERS, announce_orders, customer_group
from tests.platform_core.live.websocket_support import (
    converse,
    open_socket,
    place,
    received_order_ids,
    rows,
    token_auth,
)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("in_memory_channel_layer")
def test_only_the_groups_a_connection_has_joined_are_listened(customer, other_customer):
    asked = {ALL_ORDERS, customer_group(customer.pk), customer_group(other_customer.pk)}
    headers = token_auth(customer)

    async def scenario() -> None:
        socket = await open_socket("/ws/orders/", headers)
        assert await asyncio.to_thread(listened_groups_from_thread, asked) == {
            customer_group(customer.pk)
        }
        await socket.disconnect()
        assert await asyncio.to_thread(listened_groups_from_thread, asked) == set()

    converse(scenario)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("in_memory_channel_layer")
def test_an_order_nobody_listens_for_is_not_even_encoded(customer, other_customer, caplog):
    unencodable = {**rows(place(other_customer, 1, 1))[0], "no_such_field": 1}
    wanted = rows(place(customer, 1, 2))
    headers = token_auth(customer)

    async def scenario() -> None:
        socket = await open_socket("/ws/orders/", headers)
        with caplog.at_level(logging.ERROR, logger="projections.live"):
            await asyncio.to_thread(announce_orders, [unencodable, *wanted])
        assert await received_order_ids(socket, 1) == [str(wanted[0]["id"])]
        await socket.disconnect()

    converse(scenario)
    assert not caplog.records, "the other customer's order was left alone"


async def _listened_soon(layer: Any, groups: set[str], expected: set[str]) -> set[str]:
    """What `layer.listened(groups)` says once it says `expected`, or after 5 s (Redis
    takes a subscription a moment after the client sent it)."""
    deadline = asyncio.get_running_loop().time() + 5
    while (found := await layer.listened(groups)) != expected:
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.01)
    return found


def _layer() -> Any:
    return PubSubChannelLayer(
        hosts=[django_settings.REDIS_URL], prefix=f"test-pubsub-{uuid.uuid4().hex}"
    )


@pytest.mark.redis
def test_a_batch_reaches_the_groups_joined_through_the_layer_in_order():
    messages = [
        ("a", {"type": "live.update", "n": 1}),
        ("nobody", {"type": "live.update", "n": 2}),
        ("b", {"type": "live.update", "n": 3}),
        ("a", {"type": "live.update", "n": 4}),
    ]

    async def scenario() -> list[int]:
        layer = _layer()
        try:
            channel = await layer.new_channel()
            await layer.group_add("a", channel)
            await layer.group_add("b", channel)
            assert await _listened_soon(layer, {"a", "b"}, {"a", "b"}) == {"a", "b"}
            await layer.group_send_many(messages)
            return [(await layer.receive(channel))["n"] for _ in range(3)]
        finally:
            await layer.flush()

    assert asyncio.run(scenario()) == [1, 3, 4]


@pytest.mark.redis
def test_the_redis_layer_tells_which_groups_anyone_joined_in_any_process():
    async def scenario() -> tuple[set[str], set[str]]:
        listener, sender = _layer(), _layer()
        sender._kwargs["prefix"] = listener._kwargs["prefix"]  # one deployment, two processes
        try:
            await listener.group_add("a", await listener.new_channel())
            joined = await _listened_soon(sender, {"a", "b"}, {"a"})
            await listener.flush()
            return joined, await _listened_soon(sender, {"a", "b"}, set())
        finally:
            await sender.flush()

    assert asyncio.run(scenario()) == ({"a"}, set())
