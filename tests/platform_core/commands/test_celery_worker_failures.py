"""Command tasks that fail, and workers that die, with RabbitMQ and real Celery workers.

A command that keeps failing is dead-lettered after its attempts and runs once when
retried after the fix; a domain error is dead-lettered at once; a message no worker can
run goes to RabbitMQ's dead-letter queue; a task whose worker (or pool process) is
SIGKILLed midway, inside its transaction, is redelivered and takes effect once. The worker
harness is in `test_celery_worker.py`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from uuid import UUID, uuid4

import pytest
from django.core.management import call_command
from django.db import DatabaseError, transaction

from config.celery import app
from inventory.commands import RestockProduct
from inventory.tasks import restock_product
from platform_core.commands.celery_commands import CommandTask, command_task, send_command
from platform_core.commands.command_outbox import (
    CeleryCommandPublisher,
    command_envelope,
    relay_lanes,
)
from platform_core.eventsourcing.messages import MessageContext, message_context
from platform_core.eventsourcing.retry import RetryPolicy
from platform_core.messaging import dead_letters
from platform_core.messaging.envelope import Outgoing
from platform_core.messaging.local import LocalPublisher
from platform_core.messaging.relay import OutboxRelay
from platform_core.models import DeadLetter, InboxMessage, OutboxMessage
from tests.platform_core.commands.test_celery_worker import (
    Worker,
    barrier,
    broker_url,
    channel,
    product,
    purge_queues,
    queue_state,
    restocks,
    send,
    start_worker,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.django_db(transaction=True)]
# The harness's fixtures, imported for pytest to find.
__all__ = ["broker_url", "product", "start_worker"]


# Test-only tasks, named explicitly so the worker and pytest agree whatever the import path.
@command_task("inventory", name="tests.celery.restock_unless_broken", max_retries=2)
def restock_unless_broken(
    task: CommandTask, *, sku: str, quantity: int, command_id: str, broken: str
) -> str:
    """Fails for as long as the file `broken` exists: a bug until the fix is deployed."""
    if Path(broken).exists():
        raise RuntimeError("the stock service is misconfigured")
    return task.execute(RestockProduct(sku=sku, quantity=quantity, command_id=UUID(command_id)))


@command_task(
    "inventory",
    name="tests.celery.restock_by_script",
    max_retries=1,
    retry_kwargs={"countdown": 0},
    retry_backoff=0,
    outage_retry=RetryPolicy(max_attempts=1_000_000, base_delay=0, max_delay=0),
)
def restock_by_script(
    task: CommandTask, *, sku: str, quantity: int, command_id: str, script: str
) -> str:
    """Run n does what the script's n-th letter says: O the database out of reach (as
    `execute` retries it), T a transient failure, S restock."""
    step = script[task.request.retries + task.outage_retries]
    if step == "O":
        raise task.retry_outage(DatabaseError("connection refused"))
    if step == "T":
        raise ConnectionError("the gateway went away")
    return task.execute(RestockProduct(sku=sku, quantity=quantity, command_id=UUID(command_id)))


@command_task("inventory", name="tests.celery.restock_when_released")
def restock_when_released(
    task: CommandTask, *, sku: str, quantity: int, command_id: str, gate: str
) -> str:
    """Restocks, then, before committing, says it got there (pid, whether redelivered)
    and holds until the test releases it."""
    with transaction.atomic():
        outcome = task.execute(
            RestockProduct(sku=sku, quantity=quantity, command_id=UUID(command_id))
        )
        redelivered = "redelivered" if task.request.delivery_info.get("redelivered") else "first"
        (Path(gate) / f"started-{os.getpid()}-{redelivered}").touch()
        deadline = time.monotonic() + 60
        while not (Path(gate) / "release").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("never released")
            time.sleep(0.02)
    return outcome


def test_a_command_that_keeps_failing_is_dead_lettered_and_retried_once_after_the_fix(
    start_worker: Callable[..., Worker], product: str, tmp_path: Path
) -> None:
    worker = start_worker()
    broken = tmp_path / "broken"
    broken.touch()
    with message_context(MessageContext(correlation_id="corr-worker-dl")):
        command_id = send(restock_unless_broken, sku=product, quantity=6, broken=str(broken))

    letter = wait_for(
        lambda: DeadLetter.objects.filter(source="celery:inventory", message_id=command_id).first(),
        "the dead letter",
        [worker],
    )
    assert letter.attempts == 3
    assert letter.error == "RuntimeError: the stock service is misconfigured"
    assert "restock_unless_broken" in letter.traceback
    assert letter.headers["correlation_id"] == "corr-worker-dl"
    assert queue_state("inventory") == (0, 1), "the message was acked"
    assert restocks(product) == []

    broken.unlink()  # the fix
    call_command("dead_letters", "retry", str(letter.pk))
    call_command("dead_letters", "retry", str(letter.pk))

    [restocked] = restocks(product)
    assert restocked.data["quantity"] == 6
    assert restocked.metadata["correlation_id"] == "corr-worker-dl"
    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.RETRIED


def test_retries_for_a_database_outage_are_not_attempts_of_the_command(
    start_worker: Callable[..., Worker], product: str
) -> None:
    """One attempt may be retried (max_retries=1); the outages between attempts, carried
    from retry to retry in a header through RabbitMQ, are not counted."""
    worker = start_worker()

    send(restock_by_script, sku=product, quantity=2, script="TOOOS")
    failing = send(restock_by_script, sku=product, quantity=5, script="OTOOT")

    letter = wait_for(
        lambda: DeadLetter.objects.filter(message_id=failing).first(), "the dead letter", [worker]
    )
    assert (letter.attempts, letter.error) == (2, "ConnectionError: the gateway went away")
    [restocked] = wait_for(lambda: restocks(product), "the restock after its outages", [worker])
    assert restocked.data["quantity"] == 2


def test_a_domain_error_is_dead_lettered_without_a_retry(
    start_worker: Callable[..., Worker],
) -> None:
    worker = start_worker()

    command_id = send(restock_product, sku="NO-SUCH-SKU", quantity=1)

    letter = wait_for(
        lambda: DeadLetter.objects.filter(message_id=command_id).first(),
        "the dead letter",
        [worker],
    )
    assert letter.attempts == 1
    assert letter.error.startswith("AggregateNotFound")


def test_a_message_whose_count_of_retries_says_anything_is_dead_lettered_all_the_same(
    start_worker: Callable[..., Worker], product: str
) -> None:
    """A Celery message carries its own count of retries: negative, or beyond what an
    integer column holds, its letter is stored and the worker goes on."""
    worker = start_worker()
    sent = {}
    for retries in (-5, 2**40):
        command_id = str(uuid4())
        kwargs = {"sku": "NO-SUCH-SKU", "quantity": 1, "command_id": command_id}
        app.send_task(restock_product.name, kwargs=kwargs, queue="inventory", retries=retries)
        sent[command_id] = retries

    letters = wait_for(
        lambda: len(found := DeadLetter.objects.filter(message_id__in=sent)) == 2 and found,
        "both letters",
        [worker],
    )
    assert sorted(letter.attempts for letter in letters) == [1, dead_letters.MAX_ATTEMPTS]
    send(restock_product, sku=product, quantity=3)
    [restocked] = wait_for(lambda: restocks(product), "a good command after them", [worker])
    assert restocked.data["quantity"] == 3


def test_a_message_no_worker_can_run_goes_to_the_queues_dead_letter_queue(
    start_worker: Callable[..., Worker],
) -> None:
    worker = start_worker()

    app.send_task("inventory.tasks.no_such_task", kwargs={}, queue="inventory")

    wait_for(lambda: queue_state("inventory.dead")[0] == 1, "RabbitMQ to dead-letter it", [worker])


def test_the_relay_publishes_a_command_for_a_task_it_does_not_know(
    start_worker: Callable[..., Worker],
) -> None:
    """A relay sends command rows by task name, to the queue the row names: a row for a
    task this process never imported goes out (and, unknown to the worker too, ends in the
    queue's dead-letter queue) instead of failing its batch again and again."""
    worker = start_worker()
    unknown = SimpleNamespace(name="inventory.tasks.retired_command", command_queue="inventory")
    row = command_envelope(
        unknown, {"command_id": str(uuid4())}, MessageContext(correlation_id="corr-x")
    )

    report = CeleryCommandPublisher(app).publish([Outgoing(row_id=1, envelope=row)])

    assert (report.delivered, report.failed) == ([1], {})
    wait_for(lambda: queue_state("inventory.dead")[0] == 1, "RabbitMQ to dead-letter it", [worker])


def test_the_relay_declares_a_command_queue_that_does_not_exist_yet_before_publishing(
    transactional_db: None,
) -> None:
    """Before any worker declared it (a new context, a broker that lost its queues), the
    relay declares the queue as the app does, so the command waits in it rather than
    being dropped as unroutable."""
    with channel() as ch:
        ch.queue_delete("shipping")
    task = SimpleNamespace(name="shipping.tasks.create_shipment", command_queue="shipping")
    rows = [
        command_envelope(task, {"command_id": str(uuid4())}, MessageContext(correlation_id="c"))
        for _ in range(2)
    ]
    try:
        publisher = CeleryCommandPublisher(app)
        for n, row in enumerate(rows):  # the second on the same connection
            report = publisher.publish([Outgoing(row_id=n, envelope=row)])
            assert (report.delivered, report.failed) == ([n], {})
        publisher.close()
        # queue_state declares the queue with the app's arguments: RabbitMQ would refuse
        # it if the relay had declared it otherwise.
        assert queue_state("shipping") == (2, 0)
    finally:
        purge_queues()


def started(gate: Path) -> list[tuple[int, str]]:
    return sorted(
        (int(pid), how)
        for _, pid, how in (marker.name.split("-") for marker in gate.glob("started-*"))
    )


@pytest.mark.parametrize("victim", ["the whole worker", "its pool process"])
def test_a_task_whose_worker_is_killed_midway_is_redelivered_and_completes_once(
    start_worker: Callable[..., Worker], product: str, tmp_path: Path, victim: str
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    # Only a prefork worker has a pool process to lose on its own.
    first = start_worker("threads" if victim == "the whole worker" else "prefork")
    command_id = send(restock_when_released, sku=product, quantity=7, gate=str(gate))
    [(first_pid, how)] = wait_for(lambda: started(gate), "the first worker to start", [first])
    assert how == "first"
    assert queue_state("inventory") == (0, 1), "the message is unacked, held by the worker"

    if victim == "the whole worker":
        first.kill()  # the broker requeues what the dead connection held unacked
        wait_for(lambda: queue_state("inventory") == (1, 0), "RabbitMQ to requeue the message")
        assert restocks(product) == [], "the killed worker's transaction left nothing"
        assert not InboxMessage.objects.filter(message_id=command_id).exists()
        worker = start_worker()
    else:
        os.kill(first_pid, signal.SIGKILL)  # the main process rejects the message to the queue
        worker = first
    deliveries = wait_for(lambda: len(started(gate)) == 2 and started(gate), "redelivery", [worker])
    (gate / "release").touch()

    [restocked] = wait_for(lambda: restocks(product), "the restock", [worker])
    barrier(product, [worker])
    pids = {how: pid for pid, how in deliveries}
    assert set(pids) == {"first", "redelivered"}
    assert pids["first"] == first_pid != pids["redelivered"]
    assert [e.data["quantity"] for e in restocks(product)] == [7, 1]
    assert restocked.metadata["causation_id"] == command_id
    assert (
        InboxMessage.objects.filter(consumer="command:inventory", message_id=command_id).count()
        == 1
    )


def test_a_command_sent_while_the_broker_is_down_waits_in_the_outbox_and_then_runs_once(
    start_worker: Callable[..., Worker], product: str
) -> None:
    worker = start_worker()
    with message_context(MessageContext(correlation_id="corr-broker-down")):
        command_id = send_command(restock_product, sku=product, quantity=2)
    nothing_listens = "amqp://guest:guest@127.0.0.1:9//"
    down = CeleryCommandPublisher(app, broker_url=nothing_listens)
    no_consumers = LocalPublisher([])  # the product's events: not what this is about

    assert OutboxRelay(lanes=relay_lanes(commands=down, events=no_consumers)).drain() == 1
    assert OutboxRelay(lanes=relay_lanes(commands=down, events=no_consumers)).relay_once() == (0, 1)
    [waiting] = OutboxMessage.objects.filter(message_id=command_id)
    assert waiting.published_at is None
    assert "Connection refused" in waiting.last_error or "ECONNREFUSED" in waiting.last_error

    back = CeleryCommandPublisher(app)
    assert OutboxRelay(lanes=relay_lanes(commands=back, events=no_consumers)).relay_once() == (1, 0)
    [restocked] = wait_for(lambda: restocks(product), "the restock", [worker])
    assert restocked.metadata["causation_id"] == command_id
    assert restocked.metadata["correlation_id"] == "corr-broker-down"
    barrier(product, [worker])
    assert [e.data["quantity"] for e in restocks(product)] == [2, 1]
