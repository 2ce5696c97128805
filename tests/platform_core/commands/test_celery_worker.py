"""Commands between contexts through RabbitMQ to real Celery workers on PostgreSQL.

Each test starts its own worker subprocess (`celery -A config.celery:app worker -Q
orders,inventory -c 1 --pool=threads`, with the database settings of docker-compose.yml's
worker; `--pool=prefork` where a test says so) on pytest-django's test database, so nothing a
test leaves behind (an unacked message, a retry waiting for its ETA) reaches the next.
The worker imports the test's module (`-I`) for its test-only tasks. Tests wait for
observable outcomes with a bounded deadline, never for a fixed time. The failure paths
(dead letters, a worker killed midway) are in `test_celery_worker_failures.py`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from django.conf import settings
from django.db import connection, transaction
from kombu import Connection

from inventory.commands import RegisterProduct, RestockProduct
from inventory.tasks import restock_product
from orders.commands import OrderItem, PlaceOrder
from orders.events import ShippingAddress
from orders.tasks import cancel_order
from platform_core.commands.celery_commands import CommandTask, command_task, send_command
from platform_core.commands.celery_queues import command_queue, dead_letter_queue
from platform_core.eventsourcing.messages import MessageContext, message_context
from platform_core.models import DeadLetter, InboxMessage, StoredEvent
from platform_core.runtime import Runtime, runtime

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]
QUEUES = ("orders", "inventory", "payments", "shipping")
DEADLINE = 30.0


# Test-only tasks, named explicitly so the worker and pytest agree whatever the import path.
@command_task("inventory", name="tests.celery.restock_after_failures", max_retries=3)
def restock_after_failures(
    task: CommandTask, *, sku: str, quantity: int, command_id: str, failures: int, journal: str
) -> str:
    """Restocks, but the first `failures` attempts lose the database before committing."""
    note = {"retries": task.request.retries, "at": time.time(), "eta": task.request.eta}
    with Path(journal).open("a") as lines:
        lines.write(json.dumps(note) + "\n")
    with transaction.atomic():
        outcome = task.execute(
            RestockProduct(sku=sku, quantity=quantity, command_id=UUID(command_id))
        )
        if task.request.retries < failures:
            raise ConnectionError(
                f"server closed the connection (attempt {task.request.retries + 1})"
            )
    return outcome


# The broker.
@contextlib.contextmanager
def channel() -> Iterator[Any]:
    with Connection(settings.CELERY_BROKER_URL) as broker:
        yield broker.default_channel


def queue_state(name: str) -> tuple[int, int]:
    """(ready messages, consumers) of a command or dead-letter queue."""
    queue = dead_letter_queue(name[: -len(".dead")]) if name.endswith(".dead") else None
    with channel() as ch:
        declared = (queue or command_queue(name)).bind(ch)
        declared.declare()
        ok = declared.queue_declare(passive=True)
        return ok.message_count, ok.consumer_count


def purge_queues() -> None:
    with channel() as ch:
        for name in QUEUES:
            for queue in (command_queue(name), dead_letter_queue(name)):
                bound = queue.bind(ch)
                bound.declare()
                bound.purge()


def wait_for(check: Callable[[], Any], what: str, workers: list[Worker] | None = None) -> Any:
    deadline = time.monotonic() + DEADLINE
    while not (result := check()):
        if time.monotonic() > deadline:
            logs = "\n".join(worker.log_tail() for worker in workers or [])
            raise AssertionError(f"gave up waiting for {what}\n{logs}")
        time.sleep(0.05)
    return result


class Worker:
    """A Celery worker subprocess in its own process group, logging to a file."""

    def __init__(self, log: Path, *, imports: str, pool: str = "threads") -> None:
        self.log, self.imports, self.pool = log, imports, pool
        db = connection.settings_dict
        password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "platform")]),
            "DATABASE_URL": (
                f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
            ),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            # As docker-compose.yml's worker: one connection kept across tasks.
            "CONN_MAX_AGE": "300",
            "CELERY_DB_REUSE_MAX": "1000",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        command = [
            str(Path(sys.executable).with_name("celery")),
            *("-A", "config.celery:app", "worker", "-Q", ",".join(QUEUES)),
            *("-c", "1", f"--pool={self.pool}", "-n", f"test-{uuid4().hex[:8]}@%h"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"),
            *("-I", self.imports),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._consuming, "the worker to consume its queues", [self])
        return self

    def _consuming(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the worker exited\n{self.log_tail()}")
        return all(queue_state(name)[1] for name in QUEUES)

    def kill(self) -> None:
        """SIGKILL the main process and its pool at once: the machine died."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=DEADLINE)

    def stop(self) -> None:
        # The test has seen every outcome it waits for: nothing in flight is worth the
        # seconds of a warm shutdown, and a cold one can hang while a task acks.
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def log_tail(self) -> str:
        return "".join(self.log.read_text(errors="replace").splitlines(keepends=True)[-40:])


@pytest.fixture
def broker_url() -> str:
    """The broker the test's workers use: `CELERY_BROKER_URL` (a module that needs a
    RabbitMQ vhost of its own overrides this fixture, and the setting with it)."""
    return str(settings.CELERY_BROKER_URL)


@pytest.fixture
def start_worker(
    broker_url: str, transactional_db: None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Worker]]:
    """Starts workers on the test database and `broker_url`, importing the test's module
    for its test-only tasks; stops them and empties the queues after."""
    wait_for(lambda: not any(queue_state(name)[1] for name in QUEUES), "other workers to leave")
    purge_queues()
    workers: list[Worker] = []

    def start(pool: str = "threads") -> Worker:
        log = tmp_path / f"worker-{len(workers)}.log"
        workers.append(Worker(log, imports=request.module.__name__, pool=pool).start())
        return workers[-1]

    yield start
    for worker in workers:
        worker.stop()
    wait_for(lambda: not any(queue_state(name)[1] for name in QUEUES), "the workers to leave")
    purge_queues()


@pytest.fixture
def product(platform_runtime: Runtime) -> str:
    sku = f"MUG-{uuid4().hex[:8].upper()}"
    platform_runtime.bus.handle(
        RegisterProduct(sku=sku, name="Mug", price=Decimal("9.50"), initial_stock=1)
    )
    return sku


def send(task: Any, /, **kwargs: Any) -> str:
    """`send_command`, then, once the transaction commits, publish the outbox as the
    relay process would."""
    command_id = send_command(task, **kwargs)
    transaction.on_commit(runtime().relay.drain)
    return command_id


def restocks(sku: str) -> list[StoredEvent]:
    return list(
        StoredEvent.objects.filter(
            stream_id=f"stock-{sku}", event_type="inventory.StockReplenished"
        )
    )


def barrier(sku: str, workers: list[Worker]) -> None:
    """Send one more command and wait for it: with one worker process taking one message
    at a time, every message sent before it has been handled too."""
    command_id = send(restock_product, sku=sku, quantity=1)
    wait_for(
        lambda: StoredEvent.objects.filter(metadata__causation_id=command_id).exists(),
        "the barrier command",
        workers,
    )


def test_a_command_sent_to_a_worker_runs_once_with_the_senders_context(
    start_worker: Callable[..., Worker], product: str
) -> None:
    worker = start_worker()

    sender = MessageContext(correlation_id="corr-worker-1", actor="user:9")
    with message_context(sender), transaction.atomic():
        command_id = send(restock_product, sku=product, quantity=5)
        assert queue_state("inventory") == (0, 1), "nothing leaves before the commit"

    [restocked] = wait_for(lambda: restocks(product), "the restock", [worker])
    assert restocked.data["quantity"] == 5
    assert restocked.metadata["correlation_id"] == "corr-worker-1"
    assert restocked.metadata["causation_id"] == command_id
    assert restocked.metadata["actor"] == "user:9"
    barrier(product, [worker])
    assert [e.data["quantity"] for e in restocks(product)] == [5, 1]


def test_an_order_is_cancelled_by_a_command_on_the_orders_queue(
    start_worker: Callable[..., Worker],
    platform_runtime: Runtime,
    product: str,
    project: Callable[[], None],
) -> None:
    project()
    order_id = uuid4()
    platform_runtime.bus.handle(
        PlaceOrder(
            order_id=order_id,
            customer_id=1,
            items=(OrderItem(sku=product, quantity=1),),
            shipping_address=ShippingAddress(
                name="Ada", line1="1 Analytical St", city="London", postal_code="N1", country="GB"
            ),
            payment_token="tok_visa",
        )
    )
    worker = start_worker()

    send(cancel_order, order_id=str(order_id), reason="payment declined")

    [cancelled] = wait_for(
        lambda: list(
            StoredEvent.objects.filter(
                stream_id=f"order-{order_id}", event_type="orders.OrderCancelled"
            )
        ),
        "the cancellation",
        [worker],
    )
    assert cancelled.data["reason"] == "payment declined"


def test_the_same_command_delivered_twice_has_one_effect(
    start_worker: Callable[..., Worker], product: str
) -> None:
    worker = start_worker()
    command_id = str(uuid4())

    send(restock_product, sku=product, quantity=3, command_id=command_id)
    send(restock_product, sku=product, quantity=3, command_id=command_id)
    barrier(product, [worker])

    assert [e.data["quantity"] for e in restocks(product)] == [3, 1]
    assert (
        InboxMessage.objects.filter(consumer="command:inventory", message_id=command_id).count()
        == 1
    )


def test_a_command_that_fails_transiently_is_retried_with_backoff_then_succeeds(
    start_worker: Callable[..., Worker], product: str, tmp_path: Path
) -> None:
    worker = start_worker()
    journal = tmp_path / "attempts.jsonl"

    send(restock_after_failures, sku=product, quantity=4, failures=2, journal=str(journal))

    [restocked] = wait_for(lambda: restocks(product), "the restock after two failures", [worker])
    attempts = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [a["retries"] for a in attempts] == [0, 1, 2]
    for retry, (failed, next_try) in enumerate(itertools.pairwise(attempts)):
        # Full jitter may draw a countdown of 0: the retry is sent without an ETA.
        eta = (
            datetime.fromisoformat(next_try["eta"]).timestamp() if next_try["eta"] else failed["at"]
        )
        assert eta - failed["at"] <= 2**retry + 0.5, "backoff: at most 2**n seconds"
        assert next_try["at"] >= eta - 0.05, "a retry waits for its time"
    assert restocked.data["quantity"] == 4
    assert not DeadLetter.objects.exists()
