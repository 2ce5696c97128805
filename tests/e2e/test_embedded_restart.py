"""`make run`'s embedded default keeps what a restart must not lose: an order charged
before the platform restarts is refunded when it is cancelled after (the fake gateway's
charges live in var/gateway.sqlite3, not in the process's memory)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.board_support import Api, running_platform

CUSTOMER = ("customer", "customer-demo-pass")


def test_an_order_charged_before_a_restart_is_refunded_after_it(tmp_path: Path):
    with running_platform(tmp_path, embedded=True) as platform:
        customer = Api(platform.url, *CUSTOMER)
        order_id = customer.place_order()
        assert customer.wait_for_status(order_id, "confirmed")["payment"]["status"] == "captured"

    with running_platform(tmp_path, embedded=True) as platform:  # the same var/ files
        customer = Api(platform.url, *CUSTOMER)
        customer.call("POST", f"/api/orders/{order_id}/cancel/", reason="changed my mind")
        customer.wait_for_status(order_id, "cancelled")
        refunded = customer.wait_for(
            order_id, lambda order: order["payment"]["status"] == "refunded"
        )

    assert refunded["payment"]["status"] == "refunded"
