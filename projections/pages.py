"""Browser pages: the live order board and an order's page.

They render a shell; the orders come from the REST API and the websocket feed (see
static/projections/live.js), as they would for any other client of the platform.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from projections.api import ORDER_STATUSES, OrderOutputSerializer
from projections.queries import orders_visible_to

# The websocket routes live in the ASGI router (config.asgi), which `reverse` cannot see.
ORDERS_FEED = "/ws/orders/"


@login_required
def board_page(request: HttpRequest) -> HttpResponse:
    """Every order for staff, a customer's own otherwise; columns by status."""
    context = {"statuses": ORDER_STATUSES, "ws_path": ORDERS_FEED}
    return render(request, "projections/board.html", context)


@login_required
def order_page(request: HttpRequest, order_id: uuid.UUID) -> HttpResponse:
    """One order with its live timeline; another customer's order is a 404."""
    order = get_object_or_404(orders_visible_to(request.user), id=order_id)
    context = {"order": OrderOutputSerializer(order).data, "ws_path": f"{ORDERS_FEED}{order.id}/"}
    return render(request, "projections/order.html", context)
