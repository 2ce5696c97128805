"""`manage.py verify_consistency` on the whole system in one process: quiet after a mix of
orders it says consistent; a cancelled order whose refund the gateway refused is
reported, with the saga waiting for a person, and the command exits 1."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

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
    assert saga_of(order_id).stuck
    shown = customer_client.get(f"/api/orders/{order_id}/").json()
    assert (shown["status"], shown["payment"]["status"]) == ("cancelled", "refund_failed")
