"""Operators see each projection's position, lag and failure in the admin, retry a
stopped one, and request a rebuild that the projector daemon runs."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inventory.commands import RegisterProduct
from orders.commands import ConfirmOrder, OrderItem, PlaceOrder
from platform_core.models import ProjectionCheckpoint
from platform_core.projections.rebuild_requests import RebuildRequests
from projections.models import OrderSummary
from tests.platform_core.projections.test_projector import ADDRESS

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/platform_core/projectioncheckpoint/"


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "ops-pass-123")
    client.force_login(user)
    return client


@pytest.fixture
def confirmed_order(platform_runtime, project) -> uuid.UUID:
    bus = platform_runtime.bus
    bus.handle(RegisterProduct(sku="MUG-1", name="Mug", price=Decimal("7.50"), initial_stock=5))
    project()
    order_id = uuid.uuid4()
    bus.handle(
        PlaceOrder(
            order_id=order_id,
            customer_id=1,
            items=(OrderItem(sku="MUG-1", quantity=1),),
            shipping_address=ADDRESS,
            payment_token="tok_visa",
        )
    )
    bus.handle(ConfirmOrder(order_id=order_id))
    return order_id


def _act(admin_client, action: str, *names: str):
    return admin_client.post(
        CHANGELIST,
        {"action": action, "_selected_action": list(names)},
        SERVER_NAME="localhost",
        follow=True,
    )


def test_the_projections_page_shows_position_lag_and_state(admin_client, confirmed_order):
    page = admin_client.get(CHANGELIST, SERVER_NAME="localhost")

    assert page.status_code == 200
    text = page.content.decode()
    assert "order_summary" in text
    assert "product_stock" in text
    assert "running" in text


def test_a_stopped_projection_shows_why_and_is_retried_from_the_admin(
    admin_client, confirmed_order, project
):
    project()
    ProjectionCheckpoint.objects.filter(name="order_summary").update(
        error="RuntimeError: boom", failed_position="9.9", transaction_id=0, position=0
    )
    OrderSummary.objects.all().delete()

    assert (
        "stopped at 9.9: RuntimeError: boom"
        in admin_client.get(CHANGELIST, SERVER_NAME="localhost").content.decode()
    )
    response = _act(admin_client, "retry_now", "order_summary")

    assert "Resumed: order_summary" in response.content.decode()
    assert OrderSummary.objects.get(id=confirmed_order).status == "confirmed"
    assert ProjectionCheckpoint.objects.get(name="order_summary").error == ""


def test_a_requested_rebuild_is_run_by_the_projector_and_reports_when_done(
    admin_client, confirmed_order, project, platform_runtime
):
    project()
    OrderSummary.objects.update(status="corrupted")

    _act(admin_client, "request_rebuild", "order_summary")
    requested = ProjectionCheckpoint.objects.get(name="order_summary")
    assert requested.rebuild_requested_at is not None
    assert requested.rebuild_status == "requested"

    requests = RebuildRequests(platform_runtime.projections)
    assert requests.start_requested() == ["order_summary"]
    for thread in threading.enumerate():
        if thread.name == "rebuild-order_summary":
            thread.join(timeout=30)

    done = ProjectionCheckpoint.objects.get(name="order_summary")
    assert done.rebuild_requested_at is None
    assert done.rebuild_status.startswith("done: ")
    assert OrderSummary.objects.get(id=confirmed_order).status == "confirmed"


def test_the_projector_looks_for_requested_rebuilds_at_most_every_so_often(platform_runtime):
    requests = RebuildRequests(platform_runtime.projections, check_every=3600)
    assert requests.start_requested() == []
    ProjectionCheckpoint.objects.create(name="order_summary", rebuild_requested_at=timezone.now())

    with CaptureQueriesContext(connection) as soon_after:
        assert requests.start_requested() == [], "not looked for before its time"

    assert not soon_after.captured_queries
    assert RebuildRequests(platform_runtime.projections).start_requested() == ["order_summary"]
    for thread in threading.enumerate():
        if thread.name == "rebuild-order_summary":
            thread.join(timeout=30)
