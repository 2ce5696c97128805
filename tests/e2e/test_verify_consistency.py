"""`manage.py verify_consistency` on the whole system in one process: quiet after a mix of
orders it says consistent and counts naught for each of I1 to I7; a cancelled order whose
refund the gateway refused is reported, with the saga waiting for a person, and the
command exits 1; a violation of each invariant seeded into the stores is counted under
that invariant alone, in the text report and in `--json`."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from inventory.commands import RestockProduct
from inventory.domain.stock import StockItem
from payments.models import GatewayAttempt
from platform_core.eventsourcing.repository import Repository
from platform_core.models import OutboxMessage, SagaInstance
from projections.models import OrderSummary
from tests.e2e.fulfillment_support import place, saga_of, settle

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def cancel(client, order_id: str) -> None:
    response = client.post(f"/api/orders/{order_id}/cancel/", {"reason": "no"}, format="json")
    assert response.status_code == 202, response.content


def verify(capsys) -> str:
    call_command("verify_consistency")
    return capsys.readouterr().out


def test_a_quiet_system_after_every_kind_of_order_is_consistent(shop, customer_client, capsys):
    place(customer_client, "TEA", 2)
    place(customer_client, "TEA", 1, token="tok_decline")
    place(customer_client, "TEA", 50)  # more than in stock
    cancel(customer_client, place(customer_client, "TEA", 3))
    settle(shop)

    out = verify(capsys)

    assert "4 orders (3 cancelled, 1 confirmed)" in out
    assert out.strip().endswith("consistent")


def test_a_refund_the_gateway_refused_is_reported(shop, customer_client, capsys):
    order_id = place(customer_client, "TEA", 2, token="tok_refund_fail")
    settle(shop)
    cancel(customer_client, order_id)
    settle(shop)

    with pytest.raises(CommandError, match="violation"):
        verify(capsys)

    out = capsys.readouterr().out
    assert f"order {order_id}: cancelled but the gateway refused its refund" in out
    assert f"order {order_id}: its saga needs attention: compensating take-payment failed" in out
    assert "I2 no payment captured twice, every capture of a cancelled order refunded: 2" in out
    assert "I4 no saga non-terminal: 1 violation(s)" in out
    assert saga_of(order_id).stuck
    shown = customer_client.get(f"/api/orders/{order_id}/").json()
    assert (shown["status"], shown["payment"]["status"]) == ("cancelled", "refund_failed")


def verify_json(capsys) -> dict[str, Any]:
    """`verify_consistency --json`: the report, and whether the command failed."""
    try:
        call_command("verify_consistency", "--json")
    except CommandError:
        failed = True
    else:
        failed = False
    report = json.loads(capsys.readouterr().out)
    assert failed is not report["consistent"]
    return report


def counts(report: dict[str, Any]) -> dict[str, int]:
    return {code: entry["violations"] for code, entry in report["invariants"].items()}


def test_a_quiet_system_prints_a_count_of_naught_for_each_invariant(shop, customer_client, capsys):
    place(customer_client, "TEA", 2)
    settle(shop)

    lines = verify(capsys).splitlines()

    assert lines[:7] == [
        "I1 every accepted order reached a terminal state: 0 violation(s)",
        "I2 no payment captured twice, every capture of a cancelled order refunded: 0 violation(s)",
        "I3 stock conserved per SKU: 0 violation(s)",
        "I4 no saga non-terminal: 0 violation(s)",
        "I5 every read model equals a fresh fold of the event store: 0 violation(s)",
        "I6 every outbox row published: 0 violation(s)",
        "I7 no duplicate effect of a redelivered message: 0 violation(s)",
    ]
    report = verify_json(capsys)
    assert report["consistent"] is True
    assert set(counts(report).values()) == {0}
    assert (report["orders"], report["violations"]) == ({"confirmed": 1}, [])


# Each seeds one violation of one invariant into a settled system, directly in the stores.
def _pending_order(shop, client, order_id: str) -> None:
    """An order the saga never heard of: its event left the outbox, no one consumed it."""
    place(client, "TEA", 1)
    OutboxMessage.objects.filter(published_at__isnull=True).update(published_at=timezone.now())


def _second_charge(shop, client, order_id: str) -> None:
    GatewayAttempt.objects.create(
        operation="charge",
        idempotency_key=f"charge-again-{order_id}",
        outcome="succeeded",
        amount=Decimal("10.00"),
        charge_id="ch_twice",
    )


def _stock_held_for_no_order(shop, client, order_id: str) -> None:
    stock = Repository(StockItem, store=shop.store, codec=shop.codec)
    item = stock.get("TEA")
    item.reserve(order_id=uuid4(), quantity=2)
    stock.save(item)


def _saga_running_again(shop, client, order_id: str) -> None:
    SagaInstance.objects.filter(key=order_id).update(status=SagaInstance.Status.RUNNING)


def _read_model_edited(shop, client, order_id: str) -> None:
    OrderSummary.objects.filter(id=order_id).update(status="cancelled")


def _outbox_row_unpublished(shop, client, order_id: str) -> None:
    row = OutboxMessage.objects.order_by("id").first()
    OutboxMessage.objects.filter(pk=row.pk).update(published_at=None)


def _restock_applied_twice(shop, client, order_id: str) -> None:
    """The same command handled twice, as a redelivery the inbox did not stop would."""
    restock = RestockProduct(sku="TEA", quantity=3, command_id=uuid4())
    shop.bus.handle(restock)
    shop.bus.handle(restock)


@pytest.mark.parametrize(
    ("invariant", "seed"),
    [
        ("I1", _pending_order),
        ("I2", _second_charge),
        ("I3", _stock_held_for_no_order),
        ("I4", _saga_running_again),
        ("I5", _read_model_edited),
        ("I6", _outbox_row_unpublished),
        ("I7", _restock_applied_twice),
    ],
)
def test_each_invariant_reports_the_violation_seeded_for_it_and_no_other(
    shop, customer_client, capsys, invariant, seed
):
    order_id = place(customer_client, "TEA", 2)
    settle(shop)
    seed(shop, customer_client, order_id)
    if invariant != "I6":
        settle(shop)  # relay and project what the seed wrote

    report = verify_json(capsys)

    assert counts(report) == {**dict.fromkeys(counts(report), 0), invariant: 1}, report
    [violation] = report["violations"]
    assert violation["invariant"] == invariant
