"""The read models follow what the saga's steps record: payment and shipment on the order
summary, reserved and committed stock on the product list.

Events are stored through each context's aggregate and repository, without the bus, so
no saga reacts to them: each test says exactly which events the log holds."""

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest

from inventory.domain.stock import StockItem
from orders.commands import OrderItem
from orders.domain.order import Order, ProductQuote
from orders.events import ShippingAddress
from payments.domain.payment import Payment
from payments.gateway import InMemoryFakeGateway
from platform_core.eventsourcing.aggregate import Aggregate
from platform_core.eventsourcing.repository import Repository
from platform_core.runtime import Runtime
from projections.models import OrderSummary, ProductStock
from shipping.carrier import FakeCarrier, tracking_number_for
from shipping.domain.shipment import Shipment
from shipping.events import Address

pytestmark = pytest.mark.django_db(transaction=True)

A = TypeVar("A", bound=Aggregate[Any])
Save = Callable[[Aggregate[Any]], None]

CUSTOMER = 7
SHIPMENT = "SHP-1"
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "1 Analytical St",
    "city": "London",
    "postal_code": "N1 9GU",
    "country": "GB",
}


class Catalog:
    def quote(self, skus: Sequence[str]) -> Mapping[str, ProductQuote]:
        return {sku: ProductQuote(name=sku.title(), unit_price=Decimal("7.50")) for sku in skus}


@pytest.fixture
def save(platform_runtime: Runtime) -> Save:
    """Store an aggregate's new events as its context's repository does."""

    def save(aggregate: Aggregate[Any]) -> None:
        Repository(
            type(aggregate), store=platform_runtime.store, codec=platform_runtime.codec
        ).save(aggregate)

    return save


@pytest.fixture
def load(platform_runtime: Runtime) -> Callable[[type[A], str], A]:
    def load(aggregate_type: type[A], aggregate_id: str) -> A:
        return Repository(
            aggregate_type, store=platform_runtime.store, codec=platform_runtime.codec
        ).get(aggregate_id)

    return load


@pytest.fixture
def order_id(save: Save) -> UUID:
    order_id = uuid4()
    order = Order.place(
        order_id=order_id,
        customer_id=CUSTOMER,
        items=(OrderItem(sku="MUG-1", quantity=2),),
        shipping_address=ShippingAddress(**ADDRESS),
        payment_ref="pvr_test",
        catalog=Catalog(),
    )
    save(order)
    return order_id


def summary(order_id: UUID) -> OrderSummary:
    return OrderSummary.objects.get(id=order_id)


def history(order_id: UUID) -> list[str]:
    return [entry["type"] for entry in summary(order_id).history]


def shipment(order_id: UUID) -> tuple[str, str, str]:
    row = summary(order_id)
    return row.shipment_id, row.shipment_status, row.tracking_number


def charge(order_id: UUID, token: str, gateway: InMemoryFakeGateway | None = None) -> Payment:
    payment = Payment(str(order_id))
    payment.charge(amount=Decimal("15.00"), token=token, gateway=gateway or InMemoryFakeGateway())
    return payment


def book(order_id: UUID, shipment_id: str = SHIPMENT) -> Shipment:
    return Shipment.create(
        shipment_id=shipment_id,
        order_id=order_id,
        address=Address(**ADDRESS),
        carrier=FakeCarrier(),
    )


def test_a_captured_payment_shows_on_the_order(order_id, save, project):
    save(charge(order_id, "tok_visa"))
    project()

    assert summary(order_id).payment_status == "captured"
    assert history(order_id) == ["OrderPlaced", "PaymentCaptured"]


def test_a_declined_payment_shows_on_the_order(order_id, save, project):
    save(charge(order_id, "tok_decline"))
    project()

    assert summary(order_id).payment_status == "declined"
    assert history(order_id)[-1] == "PaymentDeclined"


def test_a_refunded_payment_shows_on_the_order(order_id, save, project):
    gateway = InMemoryFakeGateway()
    payment = charge(order_id, "tok_visa", gateway)
    payment.refund(gateway=gateway)
    save(payment)
    project()

    assert summary(order_id).payment_status == "refunded"
    assert history(order_id) == ["OrderPlaced", "PaymentCaptured", "PaymentRefunded"]


def test_a_refund_with_nothing_captured_shows_the_payment_voided(order_id, save, project):
    payment = Payment(str(order_id))
    payment.refund(gateway=InMemoryFakeGateway())
    save(payment)
    project()

    assert summary(order_id).payment_status == "voided"
    assert history(order_id)[-1] == "PaymentVoided"


def test_the_shipment_shows_its_id_status_and_tracking_number_as_it_moves(
    order_id, save, load, project
):
    save(book(order_id))
    project()
    assert shipment(order_id) == (SHIPMENT, "created", tracking_number_for(SHIPMENT))

    booked = load(Shipment, SHIPMENT)
    booked.dispatch()
    save(booked)
    project()
    assert shipment(order_id) == (SHIPMENT, "dispatched", tracking_number_for(SHIPMENT))

    booked.deliver()
    save(booked)
    project()
    assert shipment(order_id) == (SHIPMENT, "delivered", tracking_number_for(SHIPMENT))
    assert history(order_id) == [
        "OrderPlaced",
        "ShipmentCreated",
        "ShipmentDispatched",
        "ShipmentDelivered",
    ]


def test_a_cancelled_shipment_shows_on_the_order(order_id, save, project):
    booked = book(order_id)
    booked.cancel("payment declined")
    save(booked)
    project()

    assert shipment(order_id) == (SHIPMENT, "cancelled", tracking_number_for(SHIPMENT))


def test_a_new_shipment_after_a_cancelled_one_replaces_it_on_the_order(order_id, save, project):
    first = book(order_id, "SHP-1")
    first.cancel("address changed")
    save(first)
    save(book(order_id, "SHP-2"))
    project()

    assert shipment(order_id) == ("SHP-2", "created", tracking_number_for("SHP-2"))


def test_the_order_endpoint_shows_payment_and_shipment(order_id, save, project, staff_client):
    save(charge(order_id, "tok_visa"))
    save(book(order_id))
    project()

    order = staff_client.get(f"/api/orders/{order_id}/").json()

    assert order["payment"] == {"status": "captured"}
    assert order["shipment"] == {
        "id": SHIPMENT,
        "status": "created",
        "tracking_number": tracking_number_for(SHIPMENT),
    }
    assert [entry["type"] for entry in order["history"]] == [
        "OrderPlaced",
        "PaymentCaptured",
        "ShipmentCreated",
    ]


def test_every_step_moves_the_order_updated_at_forward(order_id, save, project):
    project()
    placed = summary(order_id).updated_at

    save(charge(order_id, "tok_visa"))
    project()

    assert summary(order_id).updated_at > placed


def test_payments_and_shipping_never_change_the_order_status(order_id, save, project):
    save(charge(order_id, "tok_visa"))
    booked = book(order_id)
    booked.dispatch()
    save(booked)
    project()

    assert summary(order_id).status == "pending"


def test_orders_and_shipping_agree_on_the_shipment_whichever_reports_first(
    order_id, save, load, project
):
    booked = book(order_id)
    booked.dispatch()
    booked.deliver()
    save(booked)
    order = load(Order, str(order_id))
    order.confirm()
    order.mark_shipped(shipment_id=SHIPMENT, tracking_number=tracking_number_for(SHIPMENT))
    save(order)
    project()

    row = summary(order_id)
    assert row.status == "shipped"
    assert shipment(order_id) == (SHIPMENT, "delivered", tracking_number_for(SHIPMENT))

    order.mark_delivered()
    save(order)
    project()

    assert (summary(order_id).status, summary(order_id).shipment_status) == (
        "delivered",
        "delivered",
    )


def test_order_shipped_alone_tells_the_shipment_and_its_tracking_number(
    order_id, save, load, project
):
    order = load(Order, str(order_id))
    order.confirm()
    order.mark_shipped(shipment_id=SHIPMENT, tracking_number="TRK1")
    save(order)
    project()

    assert (summary(order_id).status, shipment(order_id)) == (
        "shipped",
        (SHIPMENT, "dispatched", "TRK1"),
    )


def test_an_event_for_an_order_the_read_model_lacks_is_skipped(order_id, save, project, caplog):
    stranger = uuid4()
    save(charge(stranger, "tok_visa"))
    save(charge(order_id, "tok_visa"))

    project()

    assert not OrderSummary.objects.filter(id=stranger).exists()
    assert summary(order_id).payment_status == "captured"
    assert f"no order {stranger}" in caplog.text


@pytest.fixture
def mug(save: Save, project: Callable[[], None]) -> StockItem:
    item = StockItem.register(sku="MUG-1", name="Mug", price=Decimal("7.50"), initial_stock=10)
    save(item)
    project()
    return item


def stock() -> tuple[int, int, int]:
    row = ProductStock.objects.get(sku="MUG-1")
    return row.on_hand, row.reserved, row.available


def test_reserved_stock_is_no_longer_available(mug, save, project):
    mug.reserve(uuid4(), 3)
    mug.reserve(uuid4(), 2)
    save(mug)
    project()

    assert stock() == (10, 5, 5)


def test_released_stock_is_available_again(mug, save, project):
    first, second = uuid4(), uuid4()
    mug.reserve(first, 3)
    mug.reserve(second, 2)
    mug.release(first, 3)
    save(mug)
    project()

    assert stock() == (10, 2, 8)


def test_committed_stock_leaves_on_hand_and_reserved(mug, save, project):
    order = uuid4()
    mug.reserve(order, 3)
    mug.reserve(uuid4(), 2)
    mug.commit(order, 3)
    save(mug)
    project()

    assert stock() == (7, 2, 5)
