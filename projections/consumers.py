"""Websocket consumers: live order updates (protocol in docs/live-updates.md).

`ws/orders/`: staff receive every order, a customer their own.
`ws/orders/<id>/`: one order, for its owner or staff; the current order is sent on connect.
"""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async  # type: ignore[import-untyped]

from platform_core.eventsourcing.eventstore import LogPosition
from platform_core.live.broadcast import LiveUpdate
from platform_core.live.consumer import LiveConsumer
from projections.live import ALL_ORDERS, changed_after, customer_group, order_group, order_update
from projections.models import OrderSummary
from projections.queries import orders_visible_to


class _OrdersConsumer(LiveConsumer):
    @property
    def user(self) -> Any:
        return self.scope["user"]

    def may_see(self, update: LiveUpdate) -> bool:
        return bool(self.user.is_staff) or update.owner == self.user.pk

    def backlog(self, after: LogPosition | None, limit: int) -> list[LiveUpdate]:
        # Pages follow the log position; one event changes one order, so no two rows share one.
        orders = changed_after(self.visible_orders(), after)[:limit]
        return [order_update(order) for order in orders]

    def visible_orders(self) -> Any:
        return orders_visible_to(self.user)


class OrderListConsumer(_OrdersConsumer):
    """Every order the user may see: all for staff, their own for a customer."""

    async def authorize(self) -> list[str] | None:
        return [ALL_ORDERS] if self.user.is_staff else [customer_group(self.user.pk)]


class OrderDetailConsumer(_OrdersConsumer):
    """One order, for its owner or staff. An order the read model does not show yet is
    accepted (its owner may connect right after placing it); updates still go only to
    its owner or staff."""

    snapshot_on_connect = True

    @property
    def order_id(self) -> uuid.UUID:
        order_id: uuid.UUID = self.scope["url_route"]["kwargs"]["order_id"]
        return order_id

    async def authorize(self) -> list[str] | None:
        owner = await database_sync_to_async(_owner_of)(self.order_id)
        if owner is not None and not self.user.is_staff and owner != self.user.pk:
            return None
        return [order_group(self.order_id)]

    def visible_orders(self) -> Any:
        return super().visible_orders().filter(id=self.order_id)


def _owner_of(order_id: uuid.UUID) -> int | None:
    owner: int | None = (
        OrderSummary.objects.filter(id=order_id).values_list("customer_id", flat=True).first()
    )
    return owner
