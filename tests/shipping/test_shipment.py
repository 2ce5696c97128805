"""The Shipment aggregate and its handlers: booked with the carrier, then forward only."""

import contextlib
from datetime import UTC, datetime
from functools import partial
from uuid import UUID

import pytest

import shipping.events
from platform_core.eventsourcing.bus import CommandBus
from platform_core.eventsourcing.memory import InMemoryEventStore
from platform_core.eventsourcing.repository import AggregateNotFound, Repository
from platform_core.eventsourcing.serialization import EventCodec
from shipping.carrier import FakeCarrier, tracking_number_for
from shipping.commands import CancelShipment, CreateShipment, DeliverShipment, DispatchShipment
from shipping.domain.shipment import (
    InvalidShipment,
    InvalidTransition,
    Shipment,
    ShipmentIdTaken,
    ShipmentStatus,
)
from shipping.events import (
    Address,
    ShipmentCancellationRefused,
    ShipmentCancellationRefusedV1,
    ShipmentCancelled,
    ShipmentCancelledV1,
    ShipmentCreated,
    ShipmentCreatedV1,
    ShipmentDelivered,
    ShipmentDeliveredV1,
    ShipmentDispatched,
    ShipmentDispatchedV1,
)
from shipping.handlers import (
    cancel_shipment,
    create_shipment,
    deliver_shipment,
    dispatch_shipment,
)
from shipping.integration import outbound

AT = datetime(2025, 1, 2, tzinfo=UTC)
ORDER = UUID("00000000-0000-4000-8000-000000000001")
OTHER = UUID("00000000-0000-4000-8000-000000000002")
CODEC = EventCodec(shipping.events.EVENTS)
ADDRESS = Address(
    name="Ada Lovelace", line1="1 Analytical St", city="London", postal_code="N1", country="GB"
)
TRACKING = "TRK0123456789"

CREATED = ShipmentCreated(
    shipment_id="S-1", order_id=ORDER, address=ADDRESS, tracking_number=TRACKING, created_at=AT
)
CANCELLED = ShipmentCancelled(shipment_id="S-1", order_id=ORDER, reason="", cancelled_at=AT)
DISPATCHED = ShipmentDispatched(
    shipment_id="S-1", order_id=ORDER, tracking_number=TRACKING, dispatched_at=AT
)
DELIVERED = ShipmentDelivered(shipment_id="S-1", order_id=ORDER, delivered_at=AT)


def given(*events: object) -> Shipment:
    shipment = Shipment("S-1", clock=lambda: AT)
    for event in (CREATED, *events):
        shipment.replay(event)
    return shipment


class Shipping:
    """The shipping handlers on an in-memory store and the fake carrier, behind a bus."""

    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        self.carrier = FakeCarrier()
        self.shipments = Repository(Shipment, store=self.store, codec=CODEC, clock=lambda: AT)
        shipments = self.shipments
        self.bus = CommandBus(
            {
                CreateShipment: partial(create_shipment, shipments=shipments, carrier=self.carrier),
                CancelShipment: partial(cancel_shipment, shipments=shipments),
                DispatchShipment: partial(dispatch_shipment, shipments=shipments),
                DeliverShipment: partial(deliver_shipment, shipments=shipments),
            },
            transaction=contextlib.nullcontext,
        )

    def create(self, order_id: UUID = ORDER) -> None:
        self.bus.handle(CreateShipment(order_id=order_id, shipment_id="S-1", address=ADDRESS))

    def events(self) -> list[object]:
        return [
            CODEC.decode(e.event_type, e.schema_version, e.data)
            for e in self.store.read_stream("shipment-S-1")
        ]


def test_creating_a_shipment_books_it_with_the_carrier_for_a_tracking_number():
    shipping = Shipping()

    shipping.create()

    assert shipping.events() == [
        ShipmentCreated(
            shipment_id="S-1",
            order_id=ORDER,
            address=ADDRESS,
            tracking_number=tracking_number_for("S-1"),
            created_at=AT,
        )
    ]
    assert shipping.shipments.get("S-1").state.status is ShipmentStatus.CREATED


def test_creating_a_shipment_again_for_its_order_books_nothing_more():
    shipping = Shipping()

    shipping.create()
    shipping.create()

    assert len(shipping.events()) == 1
    assert shipping.carrier.bookings == ["S-1"]


def test_a_shipment_id_belongs_to_one_order():
    shipping = Shipping()
    shipping.create()

    with pytest.raises(ShipmentIdTaken):
        shipping.create(order_id=OTHER)


@pytest.mark.parametrize("shipment_id", ["", " S-1", "S/1", "S" * 65])
def test_a_shipment_id_is_letters_digits_dashes_or_underscores(shipment_id):
    with pytest.raises(InvalidShipment, match="shipment id"):
        Shipment.create(
            shipment_id=shipment_id, order_id=ORDER, address=ADDRESS, carrier=FakeCarrier()
        )


def test_an_address_needs_every_part_but_the_second_line():
    address = Address(name="Ada", line1=" ", city="London", postal_code="", country="GB")

    with pytest.raises(InvalidShipment, match="line1, postal_code"):
        Shipment.create(shipment_id="S-1", order_id=ORDER, address=address, carrier=FakeCarrier())


def test_the_fake_carriers_tracking_numbers_are_trk_and_ten_digits_stable_per_shipment():
    numbers = {tracking_number_for(f"S-{n}") for n in range(200)}

    assert all(number[:3] == "TRK" and number[3:].isdigit() for number in numbers)
    assert {len(number) for number in numbers} == {13}
    assert len(numbers) == 200
    assert tracking_number_for("S-7") == tracking_number_for("S-7")


def test_a_shipment_is_dispatched_then_delivered():
    shipping = Shipping()
    shipping.create()

    shipping.bus.handle(DispatchShipment(shipment_id="S-1"))
    shipping.bus.handle(DeliverShipment(shipment_id="S-1"))

    assert shipping.events()[1:] == [
        ShipmentDispatched(
            shipment_id="S-1",
            order_id=ORDER,
            tracking_number=tracking_number_for("S-1"),
            dispatched_at=AT,
        ),
        ShipmentDelivered(shipment_id="S-1", order_id=ORDER, delivered_at=AT),
    ]
    assert shipping.shipments.get("S-1").state.status is ShipmentStatus.DELIVERED


def test_a_created_shipment_can_be_cancelled_with_a_reason():
    shipment = given()

    shipment.cancel("  payment refunded  ")

    assert shipment.collect_pending() == [
        ShipmentCancelled(
            shipment_id="S-1", order_id=ORDER, reason="payment refunded", cancelled_at=AT
        )
    ]
    assert shipment.state.cancellation_reason == "payment refunded"


def test_a_cancellation_reason_has_a_sensible_length():
    with pytest.raises(InvalidShipment):
        given().cancel("x" * 501)


@pytest.mark.parametrize("history", [(DISPATCHED,), (DISPATCHED, DELIVERED)])
def test_a_cancellation_after_dispatch_is_refused_and_the_refusal_recorded(history):
    """The saga waits for an answer: too late is one, and the shipment stands."""
    shipment = given(*history)
    before = shipment.state.status

    shipment.cancel("changed my mind")

    [refused] = shipment.collect_pending()
    assert refused == ShipmentCancellationRefused(
        shipment_id="S-1", order_id=ORDER, reason=f"the shipment is {before}", refused_at=AT
    )
    assert shipment.state.status is before
    assert outbound(refused) == [
        ShipmentCancellationRefusedV1(
            shipment_id="S-1", order_id=ORDER, reason=f"the shipment is {before}"
        )
    ]


@pytest.mark.parametrize(
    ("history", "step"),
    [
        ((CANCELLED,), Shipment.cancel),
        ((DISPATCHED,), Shipment.dispatch),
        ((DISPATCHED, DELIVERED), Shipment.dispatch),
        ((DISPATCHED, DELIVERED), Shipment.deliver),
    ],
    ids=["cancel-cancelled", "dispatch-dispatched", "dispatch-delivered", "deliver-delivered"],
)
def test_repeating_a_step_already_taken_records_nothing(history, step):
    shipment = given(*history)

    step(shipment)

    assert shipment.collect_pending() == []


@pytest.mark.parametrize(
    ("history", "step"),
    [
        ((), Shipment.deliver),
        ((CANCELLED,), Shipment.dispatch),
        ((CANCELLED,), Shipment.deliver),
    ],
    ids=["deliver-created", "dispatch-cancelled", "deliver-cancelled"],
)
def test_a_shipment_only_moves_forward(history, step):
    shipment = given(*history)

    with pytest.raises(InvalidTransition):
        step(shipment)

    assert shipment.collect_pending() == []


def test_a_step_for_an_unknown_shipment_is_refused():
    with pytest.raises(AggregateNotFound):
        Shipping().bus.handle(DispatchShipment(shipment_id="S-404"))


def test_replaying_events_rebuilds_state_and_version():
    shipment = given(DISPATCHED, DELIVERED)

    assert shipment.version == 3
    assert shipment.state.status is ShipmentStatus.DELIVERED
    assert (shipment.state.order_id, shipment.state.tracking_number) == (ORDER, TRACKING)
    assert shipment.state.address == ADDRESS


def test_shipments_are_published_created_cancelled_dispatched_and_delivered():
    assert outbound(CREATED) == [
        ShipmentCreatedV1(shipment_id="S-1", order_id=ORDER, tracking_number=TRACKING)
    ]
    assert outbound(CANCELLED) == [
        ShipmentCancelledV1(shipment_id="S-1", order_id=ORDER, reason="")
    ]
    assert outbound(DISPATCHED) == [
        ShipmentDispatchedV1(shipment_id="S-1", order_id=ORDER, tracking_number=TRACKING)
    ]
    assert outbound(DELIVERED) == [ShipmentDeliveredV1(shipment_id="S-1", order_id=ORDER)]


def test_a_cancellation_that_overtakes_the_booking_voids_it_and_the_late_booking_does_nothing():
    shipping = Shipping()
    shipping.bus.handle(CancelShipment(shipment_id="S-1", reason="order cancelled", order_id=ORDER))
    shipping.create()

    assert [type(e) for e in shipping.events()] == [ShipmentCancelled]
    assert shipping.shipments.get("S-1").state.status is ShipmentStatus.CANCELLED


def test_cancelling_an_unknown_shipment_without_its_order_is_refused():
    with pytest.raises(AggregateNotFound):
        Shipping().bus.handle(CancelShipment(shipment_id="S-404"))
