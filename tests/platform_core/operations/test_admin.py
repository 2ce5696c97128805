"""Operators repair dead letters and inspect the log from the Django admin."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from inventory.commands import RegisterProduct
from platform_core.messaging import dead_letters
from platform_core.models import DeadLetter, OutboxMessage, SagaInstance, SagaStepEntry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "ops-pass-123")
    client.force_login(user)
    return client


def _dead_letter() -> DeadLetter:
    try:
        raise ValueError("handler broke on message 42")
    except ValueError as error:
        return dead_letters.record(
            dead_letters.Failure(
                source="consumer:nobody-listens",
                destination="inventory.events.v1",
                message_id="m-1",
                payload='{"sku": "X"}',
                headers={"type": "inventory.stock-level-changed.v1"},
                attempts=5,
            ),
            error,
        )


def test_the_admin_shows_the_event_store_read_only(admin_client, platform_runtime):
    platform_runtime.bus.handle(
        RegisterProduct(sku="ADM", name="Admin tea", price=Decimal("1.00"), initial_stock=1)
    )
    listing = admin_client.get("/admin/platform_core/storedevent/", SERVER_NAME="localhost")
    assert listing.status_code == 200
    assert b"inventory.ProductRegistered" in listing.content
    assert (
        admin_client.get(
            "/admin/platform_core/storedevent/add/", SERVER_NAME="localhost"
        ).status_code
        == 403
    )


def test_a_dead_letter_shows_its_error_and_traceback(admin_client):
    letter = _dead_letter()
    page = admin_client.get(
        f"/admin/platform_core/deadletter/{letter.pk}/change/", SERVER_NAME="localhost"
    )
    assert page.status_code == 200
    assert b"handler broke on message 42" in page.content
    assert b"Traceback" in page.content


def test_retrying_a_dead_letter_without_a_path_says_so_and_changes_nothing(admin_client):
    letter = _dead_letter()
    response = admin_client.post(
        "/admin/platform_core/deadletter/",
        {"action": "retry", "_selected_action": [letter.pk]},
        SERVER_NAME="localhost",
        follow=True,
    )
    assert b"no retry path for source" in response.content.lower()
    assert DeadLetter.objects.get().status == DeadLetter.Status.PENDING


def test_retrying_many_dead_letters_goes_on_past_failures_and_reports_each(
    admin_client, platform_runtime
):
    no_path = _dead_letter()
    payload, encoding = dead_letters.payload_of(b"\x00 not a CloudEvent")
    poison = dead_letters.record(
        dead_letters.Failure(
            source="consumer:orders",
            destination="shipping.events.v1",
            message_id="shipping.events.v1/0/9",
            payload=payload,
            headers=encoding,
            attempts=1,
        ),
        ValueError("not a CloudEvent: missing ce_id"),
    )

    response = admin_client.post(
        "/admin/platform_core/deadletter/",
        {"action": "retry", "_selected_action": [no_path.pk, poison.pk]},
        SERVER_NAME="localhost",
        follow=True,
    )

    shown = [str(message) for message in response.context["messages"]]
    assert any(m.startswith(f"cannot retry {no_path.pk} ") for m in shown), shown
    assert any(m.startswith(f"failed again {poison.pk} ") for m in shown), shown
    assert "0 retried, 1 failed again, 1 cannot be retried" in shown
    poison.refresh_from_db()
    assert (poison.attempts, DeadLetter.objects.count()) == (2, 2)


def test_purging_dead_letters_deletes_them(admin_client):
    letter = _dead_letter()
    admin_client.post(
        "/admin/platform_core/deadletter/",
        {"action": "purge", "_selected_action": [letter.pk]},
        SERVER_NAME="localhost",
    )
    assert not DeadLetter.objects.exists()


def test_customers_cannot_open_the_admin(client, customer):
    client.force_login(customer)
    response = client.get("/admin/platform_core/deadletter/", SERVER_NAME="localhost")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def _saga(status: str, stuck: bool = False, **data: object) -> SagaInstance:
    instance = SagaInstance.objects.create(
        id=uuid.uuid4(),
        saga="order-fulfillment",
        key=str(uuid.uuid4()),
        status=status,
        data={
            "order_id": str(uuid.uuid4()),
            "shipment_id": "shp-x",
            **({"_stuck": "reserve-stock has not answered 3 re-sends"} if stuck else {}),
            **data,
        },
        stuck_since=timezone.now() if stuck else None,
    )
    SagaStepEntry.objects.create(instance=instance, step="reserve-stock", kind="command_sent")
    return instance


def test_a_saga_shows_its_step_timeline_and_why_it_is_stuck(admin_client, platform_runtime):
    instance = _saga("compensating", stuck=True)
    page = admin_client.get(
        f"/admin/platform_core/sagainstance/{instance.pk}/change/", SERVER_NAME="localhost"
    )
    assert page.status_code == 200
    assert b"command_sent" in page.content
    assert b"has not answered 3 re-sends" in page.content


def test_the_saga_list_filters_the_stuck_ones(admin_client, platform_runtime):
    stuck, running = _saga("running", stuck=True), _saga("running")
    page = admin_client.get("/admin/platform_core/sagainstance/?stuck=yes", SERVER_NAME="localhost")
    assert stuck.key.encode() in page.content
    assert running.key.encode() not in page.content


def test_an_operator_compensates_a_stuck_running_saga(admin_client, platform_runtime):
    stuck = _saga("running", stuck=True, lines=[{"sku": "TEA", "quantity": 1}])
    response = admin_client.post(
        "/admin/platform_core/sagainstance/",
        {"action": "compensate", "_selected_action": [stuck.pk]},
        SERVER_NAME="localhost",
        follow=True,
    )
    stuck.refresh_from_db()
    assert stuck.status == SagaInstance.Status.COMPENSATING
    assert stuck.reason == "compensated by ops from the admin"
    assert b"1 saga(s) compensating" in response.content
    sent = list(OutboxMessage.objects.order_by("id").values_list("event_type", flat=True))
    assert sent == ["orders.tasks.cancel_order", "inventory.tasks.release_stock"]


def test_an_operator_resolves_a_stuck_saga_and_only_a_stuck_one(admin_client, platform_runtime):
    stuck, running = _saga("compensating", stuck=True), _saga("running", stuck=True)
    admin_client.post(
        "/admin/platform_core/sagainstance/",
        {"action": "resolve", "_selected_action": [stuck.pk, running.pk]},
        SERVER_NAME="localhost",
    )
    stuck.refresh_from_db()
    running.refresh_from_db()
    assert stuck.status == SagaInstance.Status.COMPENSATED
    assert running.status == SagaInstance.Status.RUNNING, "retried or compensated instead"
    assert stuck.history.filter(kind="resolved", detail="resolved by ops from the admin").exists()
    assert not stuck.stuck
