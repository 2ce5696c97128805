"""Schedules for the projection property tests: lanes merged and cut into transactions,
written to the real event store."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from typing import Any

from django.db import transaction
from hypothesis import strategies as st

from inventory.events import ProductRegistered
from orders.events import OrderLine
from platform_core.eventsourcing.eventstore import EventMetadata, EventStore, NewEvent
from platform_core.eventsourcing.serialization import EventCodec
from tests.platform_core.projections.projection_histories import (
    SKUS,
    OrderFacts,
    Shelf,
    Step,
    as_step,
    at_tick,
    histories,
)


@st.composite
def interleaving(draw: st.DrawFn, lanes: Sequence[Sequence[Step]]) -> list[Step]:
    """All the lanes' steps merged in any order that keeps each lane's own."""
    waiting = [list(lane) for lane in lanes if lane]
    merged: list[Step] = []
    while waiting:
        lane = waiting[draw(st.integers(0, len(waiting) - 1))]
        merged.append(lane.pop(0))
        if not lane:
            waiting.remove(lane)
    return merged


# Mostly small, so that a history spans many batches; now and then the default.
BATCH_SIZES = st.integers(1, 12) | st.just(500)


@dataclass(frozen=True)
class Schedule:
    """The merged steps cut into transactions; after each, maybe a catch-up (its batch size)."""

    transactions: list[list[Step]]
    catch_ups: list[int | None]

    @property
    def steps(self) -> list[Step]:
        return [step for chunk in self.transactions for step in chunk]


@st.composite
def schedules(draw: st.DrawFn, *, catch_ups: bool = True, max_orders: int = 5) -> Schedule:
    steps = draw(interleaving(draw(histories(max_orders))))
    chunks: list[list[Step]] = []
    while steps:
        size = draw(st.integers(1, 6))
        chunks.append(steps[:size])
        steps = steps[size:]
    between = st.none() | BATCH_SIZES if catch_ups else st.none()
    return Schedule(chunks, [draw(between) for _ in chunks])


class LogWriter:
    """Appends steps to the event store as their aggregates would, tracking versions.
    One call is one transaction; a run of one stream's events is one append."""

    def __init__(self, store: EventStore, codec: EventCodec) -> None:
        self._store, self._codec = store, codec
        self._versions: dict[str, int] = defaultdict(int)

    def write(self, steps: Sequence[Step]) -> None:
        with transaction.atomic():
            for (stream_id, stream_type), run in groupby(steps, key=lambda step: step[:2]):
                events = [self._new_event(event) for _, _, event in run]
                self._store.append(stream_id, stream_type, self._versions[stream_id], events)
                self._versions[stream_id] += len(events)

    def _new_event(self, event: Any) -> NewEvent:
        event_type, schema_version, data = self._codec.encode(event)
        return NewEvent(
            event_type=event_type,
            schema_version=schema_version,
            data=data,
            metadata=EventMetadata(event_id=uuid.uuid4()),
        )


def backlog(orders: int, movements: int) -> list[list[Step]]:
    """A large history, lane by lane: orders fulfilled or cancelled after confirmation,
    and `movements` stock events per product."""
    lanes = []
    for number in range(orders):
        line = OrderLine(
            sku=SKUS[number % 3], name="Mug", quantity=number % 4 + 1, unit_price=Decimal("7.50")
        )
        o = OrderFacts(id=uuid.UUID(int=number + 1), lines=(line,), reason="changed my mind")
        makers = [o.placed, o.captured, o.booked, o.confirmed]
        makers += (
            [o.dispatched, o.shipped, o.handed_over, o.delivered]
            if number % 2
            else [o.cancelled, o.unbooked, o.refunded]
        )
        lanes.append([as_step(make(at_tick(tick))) for tick, make in enumerate(makers)])
    for sku in SKUS:
        shelf = Shelf(sku, initial=10)
        events: list[Any] = [
            ProductRegistered(
                sku=sku, name=sku, price=Decimal("7.50"), initial_stock=10, registered_at=at_tick(0)
            )
        ]
        while len(events) <= movements:
            kind = ("replenish", "reserve", "commit", "reserve", "release")[len(events) % 5]
            event = getattr(shelf, kind)(2, 0, at_tick(len(events)))
            assert event is not None, f"the backlog's stock cycle cannot {kind}"
            events.append(event)
        lanes.append([as_step(event) for event in events])
    return lanes
