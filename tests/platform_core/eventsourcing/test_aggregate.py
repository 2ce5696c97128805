"""An aggregate folds only the events it knows: any other event is an error, never skipped."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from inventory.domain.reservation import OrderReservation
from inventory.domain.stock import StockItem
from orders.domain.order import Order
from payments.domain.payment import Payment
from platform_core.eventsourcing.aggregate import UnknownEvent
from shipping.domain.shipment import Shipment


@dataclass(frozen=True)
class SomethingElseHappened:
    detail: str = "not an event of any aggregate"


@pytest.mark.parametrize("aggregate_type", [Order, StockItem, OrderReservation, Payment, Shipment])
def test_replaying_an_unknown_event_raises_and_changes_nothing(aggregate_type):
    aggregate = aggregate_type("a-1")

    with pytest.raises(UnknownEvent, match="cannot apply SomethingElseHappened"):
        aggregate.replay(SomethingElseHappened())

    assert aggregate.version == 0
    assert not aggregate.exists
