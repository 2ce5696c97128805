from decimal import Decimal

import pytest

from inventory.commands import RegisterProduct
from inventory.tasks import restock_product
from platform_core.commands.celery_commands import send_command
from tests.e2e.fulfillment_support import eager_commands

pytestmark = pytest.mark.django_db(transaction=True)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


SCRAPER = {"HTTP_AUTHORIZATION": "Bearer scrape-secret"}


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.METRICS_TOKEN = "scrape-secret"


def test_only_the_scraper_with_the_token_reads_metrics(anonymous_client, customer_client, settings):
    assert anonymous_client.get("/metrics").status_code == 401
    assert customer_client.get("/metrics").status_code == 401
    wrong = {"HTTP_AUTHORIZATION": "Bearer guess"}
    assert anonymous_client.get("/metrics", **wrong).status_code == 401
    assert anonymous_client.get("/metrics", **SCRAPER).status_code == 200
    lower = {"HTTP_AUTHORIZATION": "bearer scrape-secret"}
    assert anonymous_client.get("/metrics", **lower).status_code == 200
    assert (
        anonymous_client.get("/metrics", HTTP_AUTHORIZATION="Token scrape-secret").status_code
        == 401
    )

    settings.METRICS_TOKEN = ""
    closed = anonymous_client.get("/metrics", **SCRAPER)
    assert (closed.status_code, closed.json()["error"]["code"]) == (403, "metrics_closed")
    settings.DEBUG = True
    assert anonymous_client.get("/metrics").status_code == 200


def test_metrics_show_the_outbox_backlog_and_projection_lag(platform_runtime, anonymous_client):
    for sku in ("M-1", "M-2"):
        platform_runtime.bus.handle(
            RegisterProduct(sku=sku, name=sku, price=Decimal("1.00"), initial_stock=1)
        )
    send_command(restock_product, sku="M-1", quantity=1)
    before = anonymous_client.get("/metrics", **SCRAPER).content.decode()
    assert _metric(before, 'outbox_backlog{kind="event"}') == 2
    assert _metric(before, 'outbox_backlog{kind="command"}') == 1
    assert _metric(before, 'projection_lag_events{projection="product_stock"}') == 2

    with eager_commands():  # the relay runs the command here rather than on a broker
        platform_runtime.relay.drain()
    platform_runtime.projections.catch_up()
    after = anonymous_client.get("/metrics", **SCRAPER).content.decode()
    assert _metric(after, 'outbox_backlog{kind="event"}') == 0
    assert _metric(after, 'outbox_backlog{kind="command"}') == 0
    assert _metric(after, 'projection_lag_events{projection="product_stock"}') == 0
