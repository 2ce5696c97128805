"""Commands between contexts on the embedded default: with no broker, a command task is
written to the outbox with the sender's transaction and runs when the relay of the same
process publishes it, through the same inbox, bus and dead-letter path a worker uses.
Runs on SQLite (and on PostgreSQL in CI)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from uuid import uuid4

import pytest
from celery import shared_task
from django.core.management import CommandError, call_command
from django.db import transaction

from config.celery import app
from inventory.commands import RegisterProduct
from inventory.tasks import restock_product
from orders.commands import OrderItem, PlaceOrder
from orders.events import ShippingAddress
from orders.tasks import cancel_order, confirm_order
from platform_core.commands.celery_commands import CommandTask, command_task, send_command
from platform_core.eventsourcing.messages import MessageContext, message_context
from platform_core.models import DeadLetter, InboxMessage, OutboxMessage, StoredEvent
from platform_core.runtime import Runtime

pytestmark = pytest.mark.django_db(transaction=True)


@command_task("inventory", name="tests.eager.always_fail", max_retries=2)
def always_fail(task: CommandTask, *, sku: str, command_id: str) -> str:
    raise RuntimeError(f"the stock service is misconfigured for {sku}")


@shared_task(base=CommandTask, bind=True, context_queue="inventory", name="tests.eager.no_id")
def fail_without_a_command_id(task: CommandTask, *, sku: str) -> str:
    raise RuntimeError(f"no stock service for {sku}")


@pytest.fixture(autouse=True)
def eager() -> Iterator[None]:
    """The embedded default, whatever broker the environment names."""
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def relay(platform_runtime: Runtime) -> Callable[[], int]:
    """Publish the outbox: here, run the command tasks in it."""
    return platform_runtime.relay.drain


@pytest.fixture
def product(platform_runtime: Runtime) -> str:
    sku = f"MUG-{uuid4().hex[:8].upper()}"
    platform_runtime.bus.handle(
        RegisterProduct(sku=sku, name="Mug", price=Decimal("9.50"), initial_stock=1)
    )
    return sku


def events(stream_id: str, event_type: str) -> list[StoredEvent]:
    return list(StoredEvent.objects.filter(stream_id=stream_id, event_type=event_type))


def restocks(sku: str) -> list[StoredEvent]:
    return events(f"stock-{sku}", "inventory.StockReplenished")


def test_a_command_leaves_only_once_the_transaction_that_decided_it_commits(
    product: str, relay: Callable[[], int]
) -> None:
    sender = MessageContext(correlation_id="corr-eager-1", actor="user:7")

    with message_context(sender), transaction.atomic():
        command_id = send_command(restock_product, sku=product, quantity=5)
        assert restocks(product) == []
    assert restocks(product) == [], "the relay publishes it"

    relay()
    [restocked] = restocks(product)
    assert restocked.data["quantity"] == 5
    assert restocked.metadata["correlation_id"] == "corr-eager-1"
    assert restocked.metadata["causation_id"] == command_id
    assert restocked.metadata["actor"] == "user:7"


def test_a_command_decided_in_a_transaction_that_rolls_back_never_leaves(
    product: str, relay: Callable[[], int]
) -> None:
    def decide_then_fail() -> None:
        with transaction.atomic():
            send_command(restock_product, sku=product, quantity=5)
            raise RuntimeError("the decision is undone")

    with pytest.raises(RuntimeError):
        decide_then_fail()

    relay()
    assert restocks(product) == []
    assert not OutboxMessage.objects.filter(topic__startswith="command:").exists()


def test_the_same_command_sent_twice_has_one_effect(product: str, relay: Callable[[], int]) -> None:
    command_id = str(uuid4())

    first = send_command(restock_product, sku=product, quantity=2, command_id=command_id)
    second = send_command(restock_product, sku=product, quantity=2, command_id=command_id)
    relay()

    assert first == second == command_id
    assert len(restocks(product)) == 1
    assert InboxMessage.objects.filter(consumer="command:inventory", message_id=command_id).exists()


def test_a_rejected_command_is_dead_lettered_at_once_and_runs_once_when_retried_after_the_fix(
    platform_runtime: Runtime, relay: Callable[[], int]
) -> None:
    sku = f"NEW-{uuid4().hex[:8].upper()}"
    with message_context(MessageContext(correlation_id="corr-eager-2")):
        command_id = send_command(restock_product, sku=sku, quantity=3)
    relay()

    letter = DeadLetter.objects.get(source="celery:inventory", message_id=command_id)
    assert letter.attempts == 1, "a domain error is not retried"
    assert letter.error.startswith("AggregateNotFound")
    assert "restock_product" in letter.traceback
    assert json.loads(letter.payload) == {"command_id": command_id, "quantity": 3, "sku": sku}
    assert letter.headers["task"] == "inventory.tasks.restock_product"
    assert letter.headers["correlation_id"] == "corr-eager-2"

    platform_runtime.bus.handle(
        RegisterProduct(sku=sku, name="Jug", price=Decimal("12.00"), initial_stock=0)
    )
    call_command("dead_letters", "retry", str(letter.pk))
    call_command("dead_letters", "retry", str(letter.pk))

    [restocked] = restocks(sku)
    assert restocked.metadata["causation_id"] == command_id
    assert restocked.metadata["correlation_id"] == "corr-eager-2"
    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.RETRIED


def test_a_failure_that_outlasts_its_retries_is_dead_lettered_with_every_attempt(
    product: str, relay: Callable[[], int]
) -> None:
    command_id = send_command(always_fail, sku=product)
    relay()

    letter = DeadLetter.objects.get(source="celery:inventory", message_id=command_id)
    assert letter.attempts == 3
    assert letter.error == f"RuntimeError: the stock service is misconfigured for {product}"
    assert letter.destination == "tests.eager.always_fail"


@pytest.fixture
def placed_order(
    platform_runtime: Runtime, product: str, project: Callable[[], None]
) -> Callable[[], str]:
    def place() -> str:
        project()
        order_id = uuid4()
        platform_runtime.bus.handle(
            PlaceOrder(
                order_id=order_id,
                customer_id=1,
                items=(OrderItem(sku=product, quantity=1),),
                shipping_address=ShippingAddress(
                    name="Ada",
                    line1="1 Analytical St",
                    city="London",
                    postal_code="N1",
                    country="GB",
                ),
                payment_token="tok_visa",
            )
        )
        return str(order_id)

    return place


def test_orders_are_confirmed_and_cancelled_by_command_tasks(
    placed_order: Callable[[], str], relay: Callable[[], int]
) -> None:
    confirmed, cancelled = placed_order(), placed_order()

    send_command(confirm_order, order_id=confirmed)
    send_command(cancel_order, order_id=cancelled, reason="payment declined")
    relay()

    assert len(events(f"order-{confirmed}", "orders.OrderConfirmed")) == 1
    [cancellation] = events(f"order-{cancelled}", "orders.OrderCancelled")
    assert cancellation.data["reason"] == "payment declined"


def test_a_command_that_cannot_start_is_dead_lettered_and_the_relay_goes_on(
    product: str, relay: Callable[[], int]
) -> None:
    """Written by an older version, say: an argument the task no longer takes."""
    stale = send_command(restock_product, sku=product, quantity=1, warehouse="north")
    send_command(restock_product, sku=product, quantity=4)

    relay()

    assert [e.data["quantity"] for e in restocks(product)] == [4]
    letter = DeadLetter.objects.get(source="celery:inventory", message_id=stale)
    assert "warehouse" in letter.error
    assert letter.headers["task"] == "inventory.tasks.restock_product"
    assert not OutboxMessage.objects.filter(published_at__isnull=True).exists()


def test_a_task_without_a_command_id_failing_again_updates_its_letter() -> None:
    """Its letter is known by the task's id, which the retry keeps."""
    fail_without_a_command_id.apply(kwargs={"sku": "MUG-1"}, throw=False)
    [letter] = DeadLetter.objects.filter(destination="tests.eager.no_id")
    assert letter.message_id == letter.headers["task_id"]

    with pytest.raises(CommandError, match="1 dead letter"):
        call_command("dead_letters", "retry", str(letter.pk))

    [again] = DeadLetter.objects.filter(destination="tests.eager.no_id")
    assert (again.pk, again.status) == (letter.pk, DeadLetter.Status.PENDING)
