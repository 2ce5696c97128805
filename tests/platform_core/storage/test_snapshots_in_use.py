"""Which aggregates the deployment snapshots: a product's stock, whose stream grows with
every order, is snapshotted every SNAPSHOT_EVERY events and loaded from the snapshot;
short-lived streams (an order) are read whole and never cost a snapshot query."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory.commands import RegisterProduct, RestockProduct
from inventory.domain.stock import StockItem
from platform_core.eventsourcing.repository import Repository
from platform_core.models import SnapshotRecord
from platform_core.runtime import reset_runtime, runtime
from platform_core.storage.django_snapshots import DjangoSnapshotStore

pytestmark = pytest.mark.django_db(transaction=True)


def test_stock_is_snapshotted_every_n_events_and_loaded_from_the_snapshot(
    settings, platform_runtime
):
    settings.SNAPSHOT_EVERY = 3
    reset_runtime()
    bus = runtime().bus
    bus.handle(RegisterProduct(sku="SNAP", name="Snap", price=Decimal("1.00"), initial_stock=1))
    for _ in range(4):
        bus.handle(RestockProduct(sku="SNAP", quantity=2))

    [snapshot] = SnapshotRecord.objects.filter(stream_id="stock-SNAP")
    assert snapshot.version == 3
    store, codec = runtime().store, runtime().codec
    whole = Repository(StockItem, store=store, codec=codec).get("SNAP")
    resumed = Repository(StockItem, store=store, codec=codec, snapshots=DjangoSnapshotStore())
    assert resumed.get("SNAP").state == whole.state
    assert whole.state.on_hand == 1 + 4 * 2


def test_placing_an_order_asks_for_no_snapshot(platform_runtime, customer_client, catalog):
    with CaptureQueriesContext(connection) as queries:
        response = customer_client.post(
            "/api/orders/",
            {
                "items": [{"sku": "MUG-1", "quantity": 1}],
                "shipping_address": {
                    "name": "Ada",
                    "line1": "1 Road",
                    "city": "Leeds",
                    "postal_code": "LS1",
                    "country": "GB",
                },
                "payment_token": "tok_visa",
            },
            format="json",
        )
    assert response.status_code == 202, response.content
    assert not [q for q in queries if "snapshots" in q["sql"]]
