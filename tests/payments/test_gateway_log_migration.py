"""Migration payments.0002: the fake gateway's log keeps the card's last digits of the
tokens it stored, and the tokens go, so an old charge refuses its refund as before."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from payments.domain.gateway import RefundDeclined
from payments.gateway import FakeGateway

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

BEFORE, AFTER = (
    [("payments", "0001_initial")],
    [("payments", "0002_gateway_attempts_keep_card_digits")],
)
OLD_ROWS = [
    ("order-1-charge", "tok_refund_fail", "ch_1"),
    ("order-2-charge", "tok_visa_3f9a", "ch_2"),
]


def migrate(to: list[tuple[str, str]] | None = None) -> None:
    """Migrate the gateway log's database to `to`, or to the latest payments migration."""
    executor = MigrationExecutor(connections[settings.GATEWAY_DATABASE])
    executor.migrate(to or executor.loader.graph.leaf_nodes("payments"))


def test_the_stored_tokens_become_card_digits():
    migrate(BEFORE)
    try:
        with connections[settings.GATEWAY_DATABASE].cursor() as cursor:
            for key, token, charge_id in OLD_ROWS:
                cursor.execute(
                    "INSERT INTO payments_gateway_attempts (operation, idempotency_key, outcome,"
                    " token, charge_id, refund_id, reason, attempted_at)"
                    " VALUES ('charge', %s, 'succeeded', %s, %s, '', '', CURRENT_TIMESTAMP)",
                    [key, token, charge_id],
                )
    finally:
        migrate()

    gateway = FakeGateway()
    assert [a.card_last4 for a in gateway.attempts("charge")] == ["5126", "4242"]
    with pytest.raises(RefundDeclined):
        gateway.refund(idempotency_key="order-1-refund", charge_id="ch_1")
    assert gateway.refund(idempotency_key="order-2-refund", charge_id="ch_2").refund_id
