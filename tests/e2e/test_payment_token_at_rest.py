"""The payment token is used once by the payments context and kept nowhere: after an
order's whole flow in one process (HTTP, outbox, saga, Celery commands, the gateway,
projections), no table of any database and no log line holds it."""

from __future__ import annotations

import json
import logging
import uuid
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

from payments.models import VaultedToken
from platform_core.models import OutboxMessage
from tests.e2e.fulfillment_support import ADDRESS, charges, saga_of, settle

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def distinctive(test_token: str) -> str:
    """A token the fake gateway treats as `test_token`, unlike any other text stored."""
    return f"{test_token}_{uuid.uuid4().hex}"


def place(client: Any, token: str) -> str:
    body = {
        "items": [{"sku": "TEA", "quantity": 2}],
        "shipping_address": ADDRESS,
        "payment_token": token,
    }
    response = client.post(
        "/api/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"checkout-{uuid.uuid4()}"
    )
    assert response.status_code == 202, response.content
    return str(response.json()["id"])


def tables_holding(text: str) -> list[str]:
    """Every table of every database with a row whose text holds `text`."""
    found = []
    for alias in connections:
        connection = connections[alias]
        with connection.cursor() as cursor:
            for table in connection.introspection.table_names(cursor):
                cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
                if any(text in _text(value) for row in cursor.fetchall() for value in row):
                    found.append(f"{alias}.{table}")
    return found


def _text(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG but `django.db.backends`, which the settings keep at WARNING:
    at DEBUG it prints each query's parameters, the vault's own insert among them."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.mark.parametrize(
    ("test_token", "status"),
    [("tok_visa", "confirmed"), ("tok_error", "confirmed"), ("tok_decline", "cancelled")],
)
def test_an_order_leaves_its_payment_token_in_no_table_and_no_log_line(
    shop, customer_client, logs, test_token, status
):
    token = distinctive(test_token)

    order_id = place(customer_client, token)
    assert tables_holding(token) == ["default.payment_token_vault"]
    settle(shop)

    assert customer_client.get(f"/api/orders/{order_id}/").json()["status"] == status
    assert charges(shop, order_id) == (status == "confirmed")
    assert tables_holding(token) == []
    assert token not in logs.text
    assert logs.records, "the flow logged nothing: the capture missed it"
    events = customer_client.get(f"/api/orders/{order_id}/events/")
    assert token not in events.content.decode()


def test_an_order_whose_message_held_the_token_is_charged_once_it_is_scrubbed(
    shop, customer_client
):
    token = distinctive("tok_visa")
    order_id = place(customer_client, token)
    # As an order placed before the vault left it: its unsent message held the token.
    message = OutboxMessage.objects.get(message_key=order_id, event_type__startswith="orders.")
    old = {**json.loads(message.data), "payment_token": token}
    del old["payment_ref"]
    OutboxMessage.objects.filter(pk=message.pk).update(
        event_type="orders.order-placed.v1", data=json.dumps(old)
    )
    VaultedToken.objects.all().delete()

    call_command("scrub_payment_tokens", stdout=StringIO())
    settle(shop)

    assert customer_client.get(f"/api/orders/{order_id}/").json()["status"] == "confirmed"
    assert charges(shop, order_id) == 1
    assert saga_of(order_id).data["payment_ref"].startswith("pvr_")
    assert tables_holding(token) == []
