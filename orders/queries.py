"""Reads the orders context answers from its own event streams."""

from __future__ import annotations

from uuid import UUID

import msgspec

from orders.domain.order import Order
from orders.events import OrderPlaced
from platform_core.eventsourcing.errors import NotFound
from platform_core.eventsourcing.eventstore import EventStore, RecordedEvent
from platform_core.eventsourcing.serialization import EventCodec


class OrderNotFound(NotFound):
    pass


def order_events(
    order_id: UUID, *, viewer_id: int | None, store: EventStore, codec: EventCodec
) -> list[RecordedEvent]:
    """The order's stored events, upcast to their current schema (so nothing an upcaster
    drops, such as an old card token, is served); `viewer_id` None means staff, who may
    see any order."""
    events = store.read_stream(Order.stream_id_for(str(order_id)))
    if not events:
        raise OrderNotFound(f"Order {order_id} does not exist.")
    placed = codec.decode(events[0].event_type, events[0].schema_version, events[0].data)
    if viewer_id is not None and (
        not isinstance(placed, OrderPlaced) or placed.customer_id != viewer_id
    ):
        raise OrderNotFound(f"Order {order_id} does not exist.")
    return [_upcast(event, codec) for event in events]


def _upcast(event: RecordedEvent, codec: EventCodec) -> RecordedEvent:
    schema_version, data = codec.upcast(event.event_type, event.schema_version, event.data)
    return msgspec.structs.replace(event, schema_version=schema_version, data=data)
