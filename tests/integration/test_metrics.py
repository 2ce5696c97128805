from decimal import Decimal

import pytest

from inventory.commands import RegisterProduct

pytestmark = pytest.mark.django_db(transaction=True)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


def test_metrics_show_the_outbox_backlog_and_projection_lag(platform_runtime, anonymous_client):
    for sku in ("M-1", "M-2"):
        platform_runtime.bus.handle(
            RegisterProduct(sku=sku, name=sku, price=Decimal("1.00"), initial_stock=1)
        )
    before = anonymous_client.get("/metrics").content.decode()
    assert _metric(before, "outbox_backlog") == 2
    assert _metric(before, 'projection_lag_events{projection="product_stock"}') == 2

    platform_runtime.projections.catch_up()
    platform_runtime.relay.drain()
    after = anonymous_client.get("/metrics").content.decode()
    assert _metric(after, "outbox_backlog") == 0
    assert _metric(after, 'projection_lag_events{projection="product_stock"}') == 0
