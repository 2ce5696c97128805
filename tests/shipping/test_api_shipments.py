"""POST /api/shipments/{id}/dispatch/ and /deliver/: staff stand in for the carrier."""

from dataclasses import asdict
from decimal import Decimal
from uuid import uuid4

import pytest

from inventory.commands import RegisterProduct
from orders.commands import OrderItem, PlaceOrder
from orders.events import ShippingAddress
from platform_core.models import StoredEvent
from shipping.carrier import tracking_number_for
from shipping.commands import CreateShipment
from shipping.domain.shipment import Shipment
from shipping.events import Address
from tests.support import stored_events

pytestmark = pytest.mark.django_db(transaction=True)

SHIPMENT = "SHP-1"
ADDRESS = Address(
    name="Ada Lovelace", line1="1 Analytical St", city="London", postal_code="N1", country="GB"
)


def dispatch_url(shipment_id: str = SHIPMENT) -> str:
    return f"/api/shipments/{shipment_id}/dispatch/"


def deliver_url(shipment_id: str = SHIPMENT) -> str:
    return f"/api/shipments/{shipment_id}/deliver/"


def shipment_events(shipment_id: str = SHIPMENT) -> list[str]:
    return list(
        StoredEvent.objects.filter(stream_id=Shipment.stream_id_for(shipment_id))
        .order_by("version")
        .values_list("event_type", flat=True)
    )


@pytest.fixture
def booked(platform_runtime) -> str:
    platform_runtime.bus.handle(
        CreateShipment(order_id=uuid4(), shipment_id=SHIPMENT, address=ADDRESS)
    )
    return SHIPMENT


def test_staff_dispatch_a_booked_shipment(booked, staff_client):
    response = staff_client.post(dispatch_url())

    assert response.status_code == 202
    body = response.json()
    assert (body["id"], body["status"]) == (SHIPMENT, "dispatched")
    assert response["X-Log-Position"] == body["log_position"]
    assert shipment_events() == ["shipping.ShipmentCreated", "shipping.ShipmentDispatched"]


def test_the_order_shows_its_shipment_moving(platform_runtime, project, staff_client):
    order_id = uuid4()
    platform_runtime.bus.handle(
        RegisterProduct(sku="MUG-1", name="Mug", price=Decimal("7.50"), initial_stock=10)
    )
    project()
    platform_runtime.bus.handle(
        PlaceOrder(
            order_id=order_id,
            customer_id=1,
            items=(OrderItem(sku="MUG-1", quantity=1),),
            shipping_address=ShippingAddress(**asdict(ADDRESS)),
            payment_token="tok_visa",
        )
    )
    platform_runtime.bus.handle(
        CreateShipment(order_id=order_id, shipment_id=SHIPMENT, address=ADDRESS)
    )
    order_url = f"/api/orders/{order_id}/"

    assert staff_client.post(dispatch_url()).status_code == 202
    project()
    assert staff_client.get(order_url).json()["shipment"] == {
        "id": SHIPMENT,
        "status": "dispatched",
        "tracking_number": tracking_number_for(SHIPMENT),
    }

    assert staff_client.post(deliver_url()).status_code == 202
    project()
    assert staff_client.get(order_url).json()["shipment"]["status"] == "delivered"


def test_staff_deliver_a_dispatched_shipment(booked, staff_client):
    assert staff_client.post(dispatch_url()).status_code == 202

    response = staff_client.post(deliver_url())

    assert response.status_code == 202
    assert response.json()["status"] == "delivered"
    assert shipment_events()[-1] == "shipping.ShipmentDelivered"


def test_dispatching_twice_is_accepted_and_records_nothing_more(booked, staff_client):
    assert staff_client.post(dispatch_url()).status_code == 202
    before = stored_events()

    response = staff_client.post(dispatch_url())

    assert response.status_code == 202
    assert stored_events() == before


def test_a_shipment_cannot_be_delivered_before_it_is_dispatched(booked, staff_client):
    before = stored_events()

    response = staff_client.post(deliver_url())

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_transition"
    assert stored_events() == before


def test_an_unknown_shipment_is_not_found(staff_client, platform_runtime):
    for url in (dispatch_url("SHP-404"), deliver_url("SHP-404")):
        response = staff_client.post(url)

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert stored_events() == 0


def test_a_customer_may_not_move_a_shipment(booked, customer_client):
    before = stored_events()

    for url in (dispatch_url(), deliver_url()):
        response = customer_client.post(url)

        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert stored_events() == before


def test_moving_a_shipment_needs_credentials(anonymous_client):
    response = anonymous_client.post(dispatch_url())

    assert response.status_code == 401
