"""Stored JSON and back: exact round trips and upcasting old schema versions."""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

import msgspec
import pytest

import orders.events
from orders.events import OrderLine, OrderPlaced, ShippingAddress
from platform_core.eventsourcing.serialization import EventCodec, UnknownEventType


@dataclass(frozen=True, kw_only=True)
class CustomerRenamed:
    """Version 1 stored one `name`; version 2 splits it; version 3 adds a `locale`."""

    event_type: ClassVar[str] = "test.CustomerRenamed"
    schema_version: ClassVar[int] = 2
    customer_id: int
    given_name: str
    family_name: str


@dataclass(frozen=True, kw_only=True)
class CustomerRenamedV3:
    event_type: ClassVar[str] = "test.CustomerRenamed"
    schema_version: ClassVar[int] = 3
    customer_id: int
    given_name: str
    family_name: str
    locale: str


def split_name(document: dict[str, Any]) -> dict[str, Any]:
    given, _, family = document.pop("name").partition(" ")
    return {**document, "given_name": given, "family_name": family}


def add_locale(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "locale": "en"}


V1_JSON = b'{"customer_id": 7, "name": "Ada Lovelace"}'


def test_an_event_round_trips_exactly_with_decimals_uuids_and_datetimes():
    codec = EventCodec(orders.events.EVENTS)
    event = OrderPlaced(
        order_id=UUID("00000000-0000-4000-8000-000000000001"),
        customer_id=7,
        lines=(OrderLine(sku="MUG-1", name="Mug", quantity=3, unit_price=Decimal("0.10")),),
        shipping_address=ShippingAddress(
            name="Ada", line1="1 St", city="London", postal_code="N1", country="GB"
        ),
        payment_ref="pvr_test",
        total=Decimal("0.30"),
        placed_at=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    )

    event_type, schema_version, data = codec.encode(event)

    assert (event_type, schema_version) == ("orders.OrderPlaced", 2)
    assert msgspec.json.decode(data)["total"] == "0.30"
    assert codec.decode(event_type, schema_version, data) == event


def test_a_stored_v1_event_is_upcast_into_the_current_class():
    codec = EventCodec([CustomerRenamed])
    codec.register_upcaster("test.CustomerRenamed", 1, split_name)

    event = codec.decode("test.CustomerRenamed", 1, V1_JSON)

    assert event == CustomerRenamed(customer_id=7, given_name="Ada", family_name="Lovelace")


def test_upcasters_chain_from_the_stored_version_to_the_current_one():
    codec = EventCodec([CustomerRenamedV3])
    codec.register_upcaster("test.CustomerRenamed", 1, split_name)
    codec.register_upcaster("test.CustomerRenamed", 2, add_locale)

    event = codec.decode("test.CustomerRenamed", 1, V1_JSON)

    assert event == CustomerRenamedV3(
        customer_id=7, given_name="Ada", family_name="Lovelace", locale="en"
    )


def test_an_event_of_the_current_version_is_not_upcast():
    codec = EventCodec([CustomerRenamed])
    codec.register_upcaster("test.CustomerRenamed", 1, split_name)
    current = b'{"customer_id": 7, "given_name": "Ada", "family_name": "Lovelace"}'

    assert codec.encode(codec.decode("test.CustomerRenamed", 2, current))[1] == 2


def test_stored_json_is_shown_as_its_current_schema_and_unknown_types_as_stored():
    codec = EventCodec([CustomerRenamed])
    codec.register_upcaster("test.CustomerRenamed", 1, split_name)
    current = b'{"customer_id":7,"given_name":"Ada","family_name":"Lovelace"}'

    version, upcast = codec.upcast("test.CustomerRenamed", 1, V1_JSON)

    assert (version, msgspec.json.decode(upcast)) == (2, msgspec.json.decode(current))
    assert codec.upcast("test.CustomerRenamed", 2, current) == (2, current)
    assert codec.upcast("test.Nothing", 1, b"{}") == (1, b"{}")


def test_an_old_version_without_an_upcaster_cannot_be_decoded():
    codec = EventCodec([CustomerRenamedV3])
    codec.register_upcaster("test.CustomerRenamed", 1, split_name)

    with pytest.raises(UnknownEventType, match="no upcaster from version 2"):
        codec.decode("test.CustomerRenamed", 1, V1_JSON)


def test_an_unregistered_event_type_cannot_be_decoded():
    with pytest.raises(UnknownEventType):
        EventCodec().decode("test.Nothing", 1, b"{}")


def test_two_classes_cannot_share_a_stored_name():
    codec = EventCodec([CustomerRenamed])

    with pytest.raises(ValueError, match="already registered"):
        codec.register(CustomerRenamedV3)
