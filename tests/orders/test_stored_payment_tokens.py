"""Orders placed before the payment token vault kept the card token in their OrderPlaced
event (schema 1). Such an event is read back, served and published without it. The
command that carries the token to the vault does not show it either."""

from __future__ import annotations

import json
import uuid

import pytest

from config.bootstrap import build_codec
from orders.commands import OrderItem, PlaceOrder
from orders.domain.order import Order
from orders.events import ShippingAddress
from orders.integration import outbound
from platform_core.eventsourcing.eventstore import EventMetadata, NewEvent
from platform_core.models import StoredEvent
from tests.e2e.fulfillment_support import ADDRESS

OLD_TOKEN = "tok_visa_kept_before_the_vault"


def order_placed_v1(order_id: uuid.UUID, customer_id: int) -> NewEvent:
    data = {
        "order_id": str(order_id),
        "customer_id": customer_id,
        "lines": [{"sku": "MUG-1", "name": "Mug", "quantity": 1, "unit_price": "7.50"}],
        "shipping_address": ADDRESS,
        "payment_token": OLD_TOKEN,
        "total": "7.50",
        "placed_at": "2025-01-02T03:04:05Z",
    }
    return NewEvent(
        event_type="orders.OrderPlaced",
        data=json.dumps(data).encode(),
        metadata=EventMetadata(event_id=uuid.uuid4()),
        schema_version=1,
    )


def test_an_old_order_placed_is_read_and_published_without_its_token():
    codec, order_id = build_codec(), uuid.uuid4()
    stored = order_placed_v1(order_id, customer_id=7)

    event = codec.decode(stored.event_type, stored.schema_version, stored.data)
    version, upcast = codec.upcast(stored.event_type, stored.schema_version, stored.data)

    assert (event.order_id, event.payment_ref) == (order_id, "")
    assert version == 2
    assert json.loads(upcast)["payment_ref"] == ""
    assert OLD_TOKEN not in upcast.decode()
    assert OLD_TOKEN not in repr(event)
    assert OLD_TOKEN not in repr(outbound(event))


@pytest.fixture
def old_order(platform_runtime, customer) -> uuid.UUID:
    order_id = uuid.uuid4()
    stream = Order.stream_id_for(str(order_id))
    platform_runtime.store.append(
        stream, Order.category, 0, [order_placed_v1(order_id, customer.pk)]
    )
    return order_id


@pytest.mark.django_db(transaction=True)
def test_the_events_api_serves_an_old_order_placed_without_its_token(old_order, customer_client):
    response = customer_client.get(f"/api/orders/{old_order}/events/")

    assert response.status_code == 200, response.content
    assert OLD_TOKEN not in response.content.decode()
    [placed] = response.json()
    assert (placed["type"], placed["schema_version"]) == ("orders.OrderPlaced", 2)
    assert placed["data"]["payment_ref"] == ""
    assert placed["data"]["total"] == "7.50"


@pytest.mark.django_db(transaction=True)
def test_the_admin_shows_an_old_order_placed_without_its_token(old_order, client, admin_user):
    client.force_login(admin_user)
    [row] = StoredEvent.objects.filter(stream_id=Order.stream_id_for(str(old_order)))

    page = client.get(f"/admin/platform_core/storedevent/{row.pk}/change/", SERVER_NAME="localhost")

    assert page.status_code == 200
    assert b"payment_ref" in page.content
    assert OLD_TOKEN.encode() not in page.content


def test_a_place_order_command_does_not_show_its_token():
    command = PlaceOrder(
        order_id=uuid.uuid4(),
        customer_id=7,
        items=(OrderItem(sku="MUG-1", quantity=1),),
        shipping_address=ShippingAddress(**ADDRESS),
        payment_token=OLD_TOKEN,
    )

    assert OLD_TOKEN not in repr(command)
    assert OLD_TOKEN not in str(command)
