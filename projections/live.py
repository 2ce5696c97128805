"""Order changes pushed to websocket clients (see docs/live-updates.md).

The projector calls `announce_orders` after each committed batch; each changed order goes
to three channel-layer groups: every order (staff), the customer's orders, and the order
itself. A frame is exactly what GET /api/orders/{id}/ returns, plus the log position of
the last event applied to the order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from rest_framework.renderers import JSONRenderer

from platform_core.eventsourcing.eventstore import LogPosition
from platform_core.live.broadcast import (
    LiveUpdate,
    group_send_from_thread,
    listened_groups_from_thread,
)
from projections.api import OrderOutputSerializer
from projections.models import OrderSummary

logger = logging.getLogger(__name__)

ALL_ORDERS = "orders.all"
FRAME_TYPE = "order.updated"


def customer_group(customer_id: int) -> str:
    return f"orders.customer.{customer_id}"


def order_group(order_id: object) -> str:
    return f"orders.order.{order_id}"


def announce_orders(rows: Sequence[Mapping[str, Any]]) -> None:
    """Push order-summary rows (dicts keyed by field attname) that a projector batch
    committed to the websocket clients that may see them.

    Called synchronously from the projector's thread, after the batch committed, never
    during a rebuild. Groups nobody has joined are left out, and an order none of its
    groups wants is not encoded (`listened_groups_from_thread` says why that loses
    nothing). It never raises: a failed push is logged, and a client that missed
    it catches up when it reconnects with `?after=`.
    """
    try:
        routed = [(row, _groups_of(row)) for row in rows]
        listened = listened_groups_from_thread({g for _, groups in routed for g in groups})
        if listened:
            group_send_from_thread(_messages(routed, listened))
    except Exception:
        logger.exception("live updates for %d changed orders were not sent", len(rows))


def _messages(
    routed: Sequence[tuple[Mapping[str, Any], tuple[str, ...]]], listened: set[str]
) -> list[tuple[str, dict[str, Any]]]:
    """(group, message) for each row and each of its groups in `listened`, in log order,
    which is the order each connection sends them in (see CoalescingBuffer)."""
    messages: list[tuple[str, dict[str, Any]]] = []
    for row, all_groups in sorted(routed, key=lambda routed_row: _log_order(routed_row[0])):
        groups = [group for group in all_groups if group in listened]
        if not groups:
            continue  # nobody to tell: not even encoded
        try:
            update = order_update(OrderSummary(**row))
        except Exception:
            logger.exception("cannot encode order %s for live updates", row.get("id"))
            continue
        message = update.to_message()
        messages.extend((group, message) for group in groups)
    return messages


def order_update(order: OrderSummary) -> LiveUpdate:
    """The live update for `order`; a frame over WEBSOCKET_MAX_FRAME_BYTES carries only the
    order's id and `"truncated": true`, and the client fetches the order over REST."""
    position = LogPosition(order.last_transaction_id, order.last_position)
    body = OrderOutputSerializer(order).data
    frame = _render(body, position)
    if len(frame) > settings.WEBSOCKET_MAX_FRAME_BYTES:
        frame = _render({"id": body["id"]}, position, truncated=True)
    return LiveUpdate(
        key=str(order.id),
        position=position,
        frame=frame.decode(),
        owner=order.customer_id,
    )


def changed_after(
    orders: QuerySet[OrderSummary], after: LogPosition | None
) -> QuerySet[OrderSummary]:
    """`orders` whose last event comes after `after` in the log, oldest change first."""
    if after is not None:
        orders = orders.filter(
            Q(last_transaction_id__gt=after.transaction_id)
            | Q(last_transaction_id=after.transaction_id, last_position__gt=after.position)
        )
    return orders.order_by("last_transaction_id", "last_position")


def _groups_of(row: Mapping[str, Any]) -> tuple[str, str, str]:
    return ALL_ORDERS, customer_group(row["customer_id"]), order_group(row["id"])


def _log_order(row: Mapping[str, Any]) -> tuple[int, int]:
    return row["last_transaction_id"], row["last_position"]


def _render(order: Mapping[str, Any], position: LogPosition, **extra: Any) -> bytes:
    # The REST API's renderer, so that a frame's order is byte for byte its GET response.
    frame = {"type": FRAME_TYPE, "order": order, "position": str(position), **extra}
    return JSONRenderer().render(frame)
