"""Queries over the read models."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from django.db.models import Count, QuerySet

from platform_core.models import SagaInstance
from platform_core.storage import pg
from platform_core.storage.backends import backend
from projections.models import OrderSummary, ProductStock


def orders_visible_to(
    user: Any, status: str | None = None, customer_id: int | None = None
) -> QuerySet[OrderSummary]:
    """Staff see every order (or one customer's), customers their own."""
    orders = OrderSummary.objects.all()
    if not user.is_staff:
        orders = orders.filter(customer_id=user.pk)
    elif customer_id is not None:
        orders = orders.filter(customer_id=customer_id)
    if status:
        orders = orders.filter(status=status)
    return orders


# Every order placed asks for its prices: a prepared statement where the database has them.
_PG_PRICES = (
    f"SELECT sku, name, price FROM {ProductStock._meta.db_table} WHERE sku = ANY(%s::text[])"
)


def product_prices(skus: Sequence[str]) -> dict[str, tuple[str, Decimal]]:
    """Name and unit price of each known SKU among `skus`."""
    if backend().prepared:
        rows: Iterable[tuple[Any, ...]] = pg.fetchall(_PG_PRICES, [sorted(set(skus))], binary=True)
    else:
        rows = ProductStock.objects.filter(sku__in=set(skus)).values_list("sku", "name", "price")
    return {sku: (name, price) for sku, name, price in rows}


def fulfillment_overview() -> dict[str, Any]:
    """Orders by status and saga instances by saga and status, for staff."""
    orders = dict(
        OrderSummary.objects.values_list("status").annotate(n=Count("id")).order_by("status")
    )
    sagas: dict[str, dict[str, int]] = {}
    for saga, state, n in (
        SagaInstance.objects.values_list("saga", "status").annotate(n=Count("id")).order_by()
    ):
        sagas.setdefault(saga, {})[state] = n
    return {"orders": orders, "sagas": sagas}
