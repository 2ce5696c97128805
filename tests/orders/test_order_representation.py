"""The order's JSON is built directly for speed; it must equal DRF's generic rendering of
OrderOutputSerializer, which the OpenAPI schema documents."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from rest_framework import serializers

from projections.api import OrderOutputSerializer, order_representation
from projections.models import OrderSummary

money = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False)
text = st.text(max_size=30)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def _generic(order: OrderSummary) -> dict:
    return serializers.ModelSerializer.to_representation(OrderOutputSerializer(), order)


@given(
    total=money,
    prices=st.lists(money, max_size=3),
    shipment=st.sampled_from(["", "SHP-1"]),
    payment=st.sampled_from(["", "captured", "refunded"]),
    reason=text,
    placed_at=moments,
)
def test_the_fast_rendering_equals_drfs_generic_one(
    total, prices, shipment, payment, reason, placed_at
):
    order = OrderSummary(
        id=uuid.uuid4(),
        customer_id=7,
        status="confirmed",
        items=[
            {"sku": f"SKU-{n}", "name": "Mug", "quantity": n + 1, "unit_price": str(price)}
            for n, price in enumerate(prices)
        ],
        total=total,
        payment_status=payment,
        shipment_id=shipment,
        shipment_status="dispatched" if shipment else "",
        tracking_number="TRK1" if shipment else "",
        cancellation_reason=reason,
        history=[{"type": "OrderPlaced", "at": placed_at.isoformat()}],
        placed_at=placed_at,
        updated_at=placed_at + timedelta(microseconds=1),
    )

    assert order_representation(order) == _generic(order)


def test_a_time_in_another_zone_is_shown_in_utc_as_drf_does():
    moment = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    order = OrderSummary(
        id=uuid.uuid4(),
        customer_id=1,
        status="pending",
        items=[],
        total=Decimal("1.5"),
        history=[],
        placed_at=moment,
        updated_at=moment,
    )

    assert order_representation(order) == _generic(order)
    assert order_representation(order)["placed_at"] == "2026-05-01T10:00:00Z"
