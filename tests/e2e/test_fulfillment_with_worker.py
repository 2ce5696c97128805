"""The saga with its commands executed by a real Celery worker over RabbitMQ, on the test
database: the saga's process (here the test, relaying in-process) and the worker are
separate processes, as in production."""

from __future__ import annotations

import pytest

from platform_core.models import SagaInstance
from tests.e2e.fulfillment_support import charges, place, register, saga_of
from tests.platform_core.commands.test_celery_worker import broker_url, start_worker, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.rabbitmq,
]
__all__ = ["broker_url", "start_worker"]  # the fixtures, used by the tests below


def relay_until_finished(runtime, order_id: str) -> SagaInstance:
    """Relay outbox rows to the in-process consumer groups (the saga sends its commands
    to RabbitMQ from there) until the saga ends."""

    def finished() -> SagaInstance | None:
        runtime.relay.drain()
        saga = SagaInstance.objects.filter(key=order_id).first()
        return saga if saga and saga.status in ("completed", "compensated") else None

    return wait_for(finished, "the saga to finish")


def test_a_worker_runs_every_saga_command_and_the_order_is_confirmed(
    start_worker, platform_runtime, customer_client, project
):
    start_worker()
    register(platform_runtime, "TEA", stock=5)
    project()
    order_id = place(customer_client, "TEA", 2)

    assert relay_until_finished(platform_runtime, order_id).status == "completed"
    project()
    assert customer_client.get(f"/api/orders/{order_id}/").json()["status"] == "confirmed"
    assert charges(platform_runtime, order_id) == 1


def test_a_worker_declines_and_the_saga_compensates(
    start_worker, platform_runtime, customer_client, project
):
    start_worker()
    register(platform_runtime, "TEA", stock=5)
    project()
    order_id = place(customer_client, "TEA", 2, token="tok_decline")

    assert relay_until_finished(platform_runtime, order_id).status == "compensated"
    assert saga_of(order_id).reason
    assert charges(platform_runtime, order_id) == 0
