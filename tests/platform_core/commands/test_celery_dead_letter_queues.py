"""What RabbitMQ dead-letters from the command queues reaches the dead-letter store.

With real RabbitMQ in a vhost of each test's own (other suites on the server purge the
same queue names in "/") and, where a test needs one, a real worker from the harness of
`test_celery_worker.py`. A message for a task no worker knows, one a consumer rejects and
one whose TTL expires each become one letter with the reason RabbitMQ gave; draining again,
or after a drain that died before its ack, adds none; a retry publishes the message again,
and a second death updates the same letter.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any
from uuid import uuid4

import pytest
from django.conf import settings
from django.core.management import call_command
from kombu import Connection

from config.celery import app
from platform_core.commands.celery_queues import command_queue, dead_letter_queue
from platform_core.commands.dead_letter_queues import drain_app, keep
from platform_core.messaging.dead_letters import raw_payload
from platform_core.models import DeadLetter
from platform_core.tasks import MAINTENANCE_QUEUE, drain_dead_letter_queues
from platform_core.testing.fleet import delete_vhost, recreate_vhost
from tests.platform_core.commands import test_celery_worker as harness

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.django_db(transaction=True)]
# The harness's fixtures, here for pytest to find; `broker_url` below overrides its own.
product, start_worker = harness.product, harness.start_worker
Worker, queue_state, wait_for = harness.Worker, harness.queue_state, harness.wait_for

RAW = b"\x00\xff not a task \x00"


@pytest.fixture
def broker_url(settings: Any) -> Iterator[str]:
    """A vhost of the test's own, for the app, the harness and the workers it starts."""
    vhost = f"test-dead-letters-{uuid4().hex[:8]}"
    recreate_vhost(vhost)
    with Connection(settings.CELERY_BROKER_URL) as default:
        url = str(default.clone(virtual_host=vhost).as_uri(include_password=True))
    # The environment's CELERY_BROKER_URL outranks the app's broker_url; the write URL,
    # which the drain and a retry connect to, is the app's own.
    settings.CELERY_BROKER_URL, previous = url, app.conf.get("broker_write_url")
    app.conf.broker_write_url = url
    try:
        with connected(url) as connection:
            for name in harness.QUEUES:
                for queue in (command_queue(name), dead_letter_queue(name)):
                    queue.bind(connection.default_channel).declare()
        yield url
    finally:
        app.conf.broker_write_url = previous
        delete_vhost(vhost)


@contextlib.contextmanager
def connected(url: str) -> Iterator[Any]:
    with Connection(url) as connection:
        yield connection


def send_task(url: str, name: str, queue: str, **kwargs: Any) -> str:
    """Publish a Celery task message by name, as the relay does; its task id."""
    with connected(url) as connection:
        producer = app.amqp.Producer(connection.default_channel, auto_declare=False)
        task_id = str(uuid4())
        app.send_task(name, kwargs=kwargs, queue=queue, producer=producer, task_id=task_id)
    return task_id


def reject_next(url: str, queue: str) -> None:
    """Take the next message of `queue` and reject it, as a consumer that refuses it."""
    with connected(url) as connection:
        message = command_queue(queue).bind(connection.default_channel).get(no_ack=False)
        message.reject(requeue=False)


def publish_expiring(url: str, message_id: str) -> None:
    """Raw bytes with a per-message TTL on a queue nobody consumes: it expires."""
    with connected(url) as connection:
        connection.Producer().publish(
            RAW,
            exchange="",
            routing_key="shipping",
            content_type="application/octet-stream",
            headers={"origin": "a legacy sender"},
            message_id=message_id,
            expiration=0.001,
        )


def dead(queue: str, count: int) -> Callable[[], bool]:
    return lambda: queue_state(f"{queue}.dead")[0] == count


def test_expired_and_rejected_messages_become_one_letter_each_with_the_reason(
    broker_url: str,
) -> None:
    publish_expiring(broker_url, "legacy-1")
    task_id = send_task(
        broker_url, "inventory.tasks.restock_product", "inventory", sku="TEA", quantity=1
    )
    reject_next(broker_url, "inventory")
    wait_for(lambda: dead("shipping", 1)() and dead("inventory", 1)(), "two dead messages")

    assert drain_app(app) == 2
    assert drain_app(app) == 0

    expired = DeadLetter.objects.get(source="celery:shipping")
    assert (expired.message_id, expired.destination) == ("legacy-1", "shipping")
    assert base64.b64decode(expired.payload) == RAW, "the body exactly as it was"
    assert expired.headers["origin"] == "a legacy sender"
    assert expired.headers["amqp"]["reason"] == "expired"
    assert expired.error.startswith("DeadLettered: expired: ")
    rejected = DeadLetter.objects.get(source="celery:inventory")
    assert (rejected.message_id, rejected.attempts) == (task_id, 1)
    assert rejected.destination == rejected.headers["task"] == "inventory.tasks.restock_product"
    assert rejected.headers["amqp"]["reason"] == "rejected"
    assert rejected.headers["x-death"][0]["queue"] == "inventory"
    assert DeadLetter.objects.count() == 2
    assert queue_state("shipping.dead")[0] == queue_state("inventory.dead")[0] == 0


def test_a_drain_that_dies_before_its_ack_leaves_the_message_and_records_it_once(
    broker_url: str,
) -> None:
    publish_expiring(broker_url, "legacy-2")
    wait_for(dead("shipping", 1), "the expired message")
    with connected(broker_url) as connection:
        queue = dead_letter_queue("shipping").bind(connection.default_channel)
        keep(queue.get(no_ack=False), queue="shipping")  # committed; the ack never comes
    wait_for(dead("shipping", 1), "the broker to take the unacked message back")

    assert drain_dead_letter_queues.apply().get() == 1  # the job beat sends

    letter = DeadLetter.objects.get()
    assert (letter.message_id, letter.attempts) == ("legacy-2", 1)
    assert queue_state("shipping.dead")[0] == 0


def test_a_retried_unknown_task_comes_back_on_the_same_letter_and_a_rejected_command_runs(
    broker_url: str, start_worker: Callable[..., Worker], product: str
) -> None:
    command_id = str(uuid4())
    send_task(
        broker_url,
        "inventory.tasks.restock_product",
        "inventory",
        sku=product,
        quantity=4,
        command_id=command_id,
    )
    reject_next(broker_url, "inventory")
    worker = start_worker()
    unknown_id = send_task(broker_url, "inventory.tasks.no_such_task", "inventory", sku="X")
    wait_for(dead("inventory", 2), "the worker to reject the unknown task", [worker])
    assert drain_app(app) == 2
    unknown = DeadLetter.objects.get(message_id=unknown_id)
    assert unknown.headers["task"] == "inventory.tasks.no_such_task"
    assert unknown.headers["amqp"]["reason"] == "rejected"
    first_failure = unknown.last_failed_at

    out = StringIO()
    call_command("dead_letters", "retry", "--all", stdout=out)

    assert out.getvalue().splitlines()[-1] == "2 retried, 0 failed again, 0 cannot be retried"
    [restocked] = wait_for(
        lambda: harness.restocks(product), "the retried command to run", [worker]
    )
    assert restocked.metadata["causation_id"] == command_id
    wait_for(dead("inventory", 1), "the unknown task to be rejected again", [worker])
    assert drain_app(app) == 1
    assert drain_app(app) == 0
    unknown = DeadLetter.objects.get(message_id=unknown_id)
    assert (unknown.attempts, unknown.status) == (2, DeadLetter.Status.PENDING)
    assert unknown.last_failed_at > first_failure
    assert DeadLetter.objects.count() == 2
    ran = DeadLetter.objects.exclude(message_id=unknown_id).get()
    assert (ran.status, ran.attempts) == (DeadLetter.Status.RETRIED, 1)


def test_celery_beat_drains_every_minute_on_the_queue_the_worker_consumes() -> None:
    job = settings.CELERY_BEAT_SCHEDULE["drain-dead-letter-queues"]

    assert app.tasks[job["task"]].name == drain_dead_letter_queues.name
    route = app.amqp.router.route({}, job["task"], task_type=drain_dead_letter_queues)
    assert (route["queue"].name, job["schedule"]) == (MAINTENANCE_QUEUE, 60)


def publish_undecodable(url: str) -> None:
    """Two messages a worker cannot decode: a task whose JSON body is cut short, and
    plain text from a sender that is no Celery client."""
    with connected(url) as connection:
        producer = connection.Producer()
        task_id = str(uuid4())
        producer.publish(
            b'{"sku": "cut sh',
            exchange="",
            routing_key="inventory",
            content_type="application/json",
            content_encoding="utf-8",
            headers={"task": "inventory.tasks.restock_product", "id": task_id, "lang": "py"},
        )
        producer.publish(b"hello", exchange="", routing_key="inventory", content_type="text/plain")


def test_a_message_the_worker_cannot_decode_reaches_the_store(
    broker_url: str, start_worker: Callable[..., Worker]
) -> None:
    """Celery's own answer to a body it cannot decode is to log it and acknowledge it: the
    worker rejects it to the dead-letter queue instead, and the drain stores it."""
    worker = start_worker()
    publish_undecodable(broker_url)

    wait_for(dead("inventory", 2), "the worker to reject both", [worker])
    assert drain_app(app) == 2
    payloads = {raw_payload(letter) for letter in DeadLetter.objects.all()}
    assert payloads == {b'{"sku": "cut sh', b"hello"}
