"""The saga over the Kafka protocol: the outbox relay publishes to the mock cluster and
the deployment's consumer groups (saga, orders, inventory) consume from it, as
`manage.py relay_outbox` and `manage.py consume <group>` do in production."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from django.db import connections

from config.bootstrap import with_commands
from config.routing import ALL_TOPICS
from platform_core.messaging.kafka import KafkaPublisher
from platform_core.models import SagaInstance
from platform_core.testing.kafka_mock import MockKafkaCluster
from tests.e2e.fulfillment_support import charges, eager_commands, place, register, saga_of
from tests.platform_core.messaging.messaging_support import quiet, running_consumer, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture
def kafka() -> Iterator[dict[str, str]]:
    with MockKafkaCluster(brokers=1) as cluster:
        for topic in ALL_TOPICS:
            cluster.create_topic(topic, partitions=2)
        yield {"bootstrap.servers": cluster.bootstrap_servers}


@pytest.fixture
def deployment(platform_runtime, kafka, project):
    """Relay and every consumer group running against the cluster, commands eager."""
    stop = threading.Event()
    relay = with_commands(KafkaPublisher(quiet(kafka)))

    def relay_loop() -> None:
        try:
            relay.run_forever(stop, platform_runtime.outbox_changed, idle_seconds=0.05)
        finally:
            connections.close_all()

    with ExitStack() as running, eager_commands():
        for group in platform_runtime.consumer_groups.values():
            running.enter_context(running_consumer(group, kafka))
        relay_thread = threading.Thread(target=relay_loop, name="relay")
        relay_thread.start()
        running.callback(relay_thread.join, 30)
        running.callback(stop.set)
        register(platform_runtime, "TEA", stock=10)
        project()  # the catalog that prices orders is a read model
        yield platform_runtime


def finished(order_id: str) -> bool:
    saga = SagaInstance.objects.filter(key=order_id).first()
    return saga is not None and saga.status in ("completed", "compensated")


def test_an_order_is_confirmed_through_kafka(deployment, customer_client):
    order_id = place(customer_client, "TEA", 2)
    wait_until(lambda: finished(order_id), seconds=60, what="the saga to finish")
    assert saga_of(order_id).status == SagaInstance.Status.COMPLETED
    deployment.projections.catch_up()
    assert customer_client.get(f"/api/orders/{order_id}/").json()["status"] == "confirmed"
    assert charges(deployment, order_id) == 1


def test_a_declined_order_is_compensated_through_kafka(deployment, customer_client):
    order_id = place(customer_client, "TEA", 2, token="tok_decline")
    wait_until(lambda: finished(order_id), seconds=60, what="the saga to finish")
    assert saga_of(order_id).status == SagaInstance.Status.COMPENSATED
    assert charges(deployment, order_id) == 0
