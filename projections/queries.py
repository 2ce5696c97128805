"""Queries over the read models."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet

from projections.models import OrderSummary, ProductStock


def orders_visible_to(user: Any, status: str | None = None) -> QuerySet[OrderSummary]:
    """Staff see every order, customers their own."""
    orders = OrderSummary.objects.all()
    if not user.is_staff:
        orders = orders.filter(customer_id=user.pk)
    if status:
        orders = orders.filter(status=status)
    return orders


def product_prices(skus: Sequence[str]) -> dict[str, tuple[str, Decimal]]:
    """Name and unit price of each known SKU among `skus`."""
    rows = ProductStock.objects.filter(sku__in=set(skus)).values_list("sku", "name", "price")
    return {sku: (name, price) for sku, name, price in rows}
