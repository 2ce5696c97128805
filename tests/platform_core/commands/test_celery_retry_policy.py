"""How command tasks are delivered and retried: late acks, a queue per context with a
dead-letter exchange, exponential backoff with full jitter, no retry for what cannot
succeed later. Tasks run eagerly here; nothing touches a broker or a database."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
from celery import Signature, shared_task
from celery.exceptions import Retry
from celery.signals import task_retry
from celery.utils.time import get_exponential_backoff_interval

from config.celery import CONTEXT_QUEUES, app
from inventory.tasks import restock_product
from orders.tasks import cancel_order, confirm_order
from platform_core.commands.celery_commands import (
    CONTEXT_HEADER,
    OUTAGE_RETRIES_HEADER,
    CommandTask,
)
from platform_core.commands.celery_queues import celery_settings, command_queue, dead_letter_queue
from platform_core.eventsourcing.errors import Conflict
from platform_core.eventsourcing.messages import MessageContext, current_context, message_context

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


class FailureRecordingTask(CommandTask):
    """A command task that notes its final failure instead of dead-lettering it."""

    failures: list[tuple[BaseException, int]] = []
    contexts: list[MessageContext] = []

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self.failures.append((exc, self.request.retries + 1))


@shared_task(
    base=FailureRecordingTask, bind=True, context_queue="inventory", name="tests.unit.fail"
)
def fail_with(task: FailureRecordingTask, *, error: str, command_id: str) -> str:
    task.contexts.append(task.message_context())
    raise {
        "transient": ConnectionError("the database went away"),
        "conflict": Conflict("the order has shipped"),
        "malformed": ValueError("badly formed hexadecimal UUID string"),
    }[error]


@pytest.fixture
def retries() -> Iterator[list[float]]:
    """The countdown of every retry scheduled while the test runs."""
    countdowns: list[float] = []

    def note(sender: Any = None, reason: Any = None, **_: Any) -> None:
        countdowns.append(reason.when)

    task_retry.connect(note, weak=False)
    FailureRecordingTask.failures.clear()
    FailureRecordingTask.contexts.clear()
    yield countdowns
    task_retry.disconnect(note)


def run(error: str, **options: Any) -> Any:
    return fail_with.apply(kwargs={"error": error, "command_id": str(uuid4())}, **options)


def test_a_transient_failure_is_retried_with_exponential_backoff_then_given_up(
    retries: list[float],
) -> None:
    result = run("transient")

    assert result.failed()
    assert len(retries) == CommandTask.max_retries == 5
    for attempt, countdown in enumerate(retries):
        assert 0 <= countdown <= min(CommandTask.retry_backoff_max, 2**attempt)
    [(error, attempts)] = FailureRecordingTask.failures
    assert isinstance(error, ConnectionError)
    assert attempts == 6


def test_backoff_is_fully_jittered_and_capped() -> None:
    def countdown(retry: int) -> int:
        return int(
            get_exponential_backoff_interval(
                factor=CommandTask.retry_backoff,
                retries=retry,
                maximum=CommandTask.retry_backoff_max,
                full_jitter=CommandTask.retry_jitter,
            )
        )

    draws = [countdown(4) for _ in range(300)]
    assert min(draws) <= 3, "full jitter spreads over 0..16 s"
    assert max(draws) >= 13
    assert all(0 <= d <= 16 for d in draws)
    assert all(countdown(20) <= CommandTask.retry_backoff_max for _ in range(50))


def test_a_domain_error_is_permanent_and_never_retried(retries: list[float]) -> None:
    run("conflict")

    assert retries == []
    [(error, attempts)] = FailureRecordingTask.failures
    assert isinstance(error, Conflict)
    assert attempts == 1


def test_a_malformed_message_is_permanent_and_never_retried(retries: list[float]) -> None:
    run("malformed")

    assert retries == []
    assert [attempts for _, attempts in FailureRecordingTask.failures] == [1]


def test_the_senders_context_in_the_task_header_becomes_the_message_context(
    retries: list[float],
) -> None:
    sent = {"correlation_id": "corr-42", "causation_id": "saga-step-7", "actor": "user:3"}

    run("conflict", headers={CONTEXT_HEADER: sent})
    run("conflict")

    assert current_context() is None, "the sender's own context is restored"
    with_header, without = FailureRecordingTask.contexts
    assert with_header == MessageContext(
        correlation_id="corr-42", causation_id="saga-step-7", actor="user:3"
    )
    assert without.correlation_id
    assert without.causation_id is None
    assert without.actor == "celery:inventory"


@pytest.mark.parametrize("error", ["transient", "conflict"])
def test_an_eager_run_leaves_the_senders_context_as_it_found_it(
    retries: list[float], error: str
) -> None:
    sender = MessageContext(correlation_id="corr-sender")

    with message_context(sender):
        run(error, headers={CONTEXT_HEADER: {"correlation_id": "corr-task"}})
        assert current_context() == sender

    assert {c.correlation_id for c in FailureRecordingTask.contexts} == {"corr-task"}
    assert current_context() is None


def test_a_correlation_id_unsafe_to_log_is_replaced(retries: list[float]) -> None:
    run("conflict", headers={CONTEXT_HEADER: {"correlation_id": "x\nFAKE LOG LINE"}})

    [context] = FailureRecordingTask.contexts
    assert "\n" not in context.correlation_id


def test_tasks_are_acked_late_and_come_back_when_their_worker_dies() -> None:
    settings = celery_settings(queues=CONTEXT_QUEUES, broker_url=RABBITMQ)

    assert settings["task_acks_late"] is True
    assert settings["task_reject_on_worker_lost"] is True
    assert settings["worker_prefetch_multiplier"] == 1
    assert settings["task_always_eager"] is False
    assert CommandTask.acks_late
    assert CommandTask.reject_on_worker_lost


def test_without_a_broker_tasks_run_eagerly_in_the_sending_process() -> None:
    settings = celery_settings(queues=CONTEXT_QUEUES, broker_url="memory://")

    assert settings["task_always_eager"] is True
    assert settings["task_eager_propagates"] is False


def test_each_context_has_a_durable_queue_that_dead_letters_to_its_own_queue() -> None:
    settings = celery_settings(queues=CONTEXT_QUEUES, broker_url=RABBITMQ)

    queues = {queue.name: queue for queue in settings["task_queues"]}
    assert set(queues) == {"orders", "inventory", "payments", "shipping"}
    for name, queue in queues.items():
        assert queue.durable
        assert queue.exchange.durable
        dead = dead_letter_queue(name)
        assert queue.queue_arguments == {"x-dead-letter-exchange": dead.exchange.name}
        assert dead.name == f"{name}.dead"
        assert dead.durable


def test_command_tasks_go_to_their_contexts_queue() -> None:
    configured = {queue.name for queue in app.conf.task_queues}

    for task, queue in [
        (confirm_order, "orders"),
        (cancel_order, "orders"),
        (restock_product, "inventory"),
    ]:
        assert isinstance(task, CommandTask)
        assert task.context_queue == queue
        assert queue in configured
        route = app.amqp.router.route({}, task.name, task_type=task)
        assert route["queue"] == command_queue(queue)


def test_a_command_the_database_outage_failed_is_retried_for_as_long_as_it_lasts(monkeypatch):
    """On a worker, a database error while no connection opens is no attempt of the
    command's: it is sent again (backing off) keeping its count of retries, which
    `max_retries` limits, and counting the outage's in a header of its own."""
    from platform_core.commands import celery_commands

    def outage(*args: Any, **kwargs: Any) -> None:
        raise celery_commands.DatabaseError("the connection is lost")

    sent: list[Signature] = []
    monkeypatch.setattr(
        celery_commands,
        "_wired",
        lambda: type("W", (), {"bus": type("B", (), {"handle": outage})()})(),
    )
    monkeypatch.setattr(celery_commands, "database_reachable", lambda: False)
    monkeypatch.setattr(Signature, "apply_async", lambda self, *a, **k: sent.append(self))
    headers = {CONTEXT_HEADER: {"correlation_id": "corr-1"}, OUTAGE_RETRIES_HEADER: 7}
    restock_product.push_request(
        is_eager=False, retries=4, headers=headers, kwargs={"command_id": "c-1"}
    )
    try:
        with pytest.raises(Retry) as retried:
            restock_product.execute(SimpleNamespace(command_id=uuid4()))
    finally:
        restock_product.pop_request()

    [again] = sent
    assert retried.value.sig is again
    assert again.kwargs == {"command_id": "c-1"}
    assert again.options["retries"] == 4, "not an attempt: the count of retries is kept"
    assert again.options["headers"] == {**headers, OUTAGE_RETRIES_HEADER: 8}
    assert 0 <= again.options["countdown"] <= 10, "jittered, at most 10 s"


@pytest.mark.parametrize(
    ("value", "counted"), [(3, 3), (0, 0), (-5, 0), (2.5, 0), ("7", 0), (True, 0), (None, 0)]
)
def test_only_a_positive_whole_number_counts_as_outage_retries(value: Any, counted: int) -> None:
    restock_product.push_request(headers={OUTAGE_RETRIES_HEADER: value})
    try:
        assert restock_product.outage_retries == counted
    finally:
        restock_product.pop_request()


def test_a_dead_letter_the_store_refuses_is_stored_once_it_takes_it(monkeypatch):
    """On a worker the message is acknowledged only after `on_failure`: it keeps trying
    to store the letter (reconnecting) rather than acknowledge a failure nobody can see."""
    from platform_core.commands import celery_commands

    refusals = iter([True, True])
    stored: list[str] = []

    def record(failure: Any, error: BaseException) -> Any:
        if next(refusals, False):
            raise celery_commands.DatabaseError("the database is down")
        stored.append(failure.message_id)
        return SimpleNamespace(pk=1)

    waits: list[float] = []
    monkeypatch.setattr(celery_commands.dead_letters, "record", record)
    monkeypatch.setattr(celery_commands.dead_letters, "close_old_connections", lambda: None)
    monkeypatch.setattr(celery_commands.time, "sleep", waits.append)
    command_id = str(uuid4())
    restock_product.push_request(is_eager=False, retries=4, headers={})
    try:
        restock_product.on_failure(
            RuntimeError("gave up"), "task-1", (), {"command_id": command_id}, None
        )
    finally:
        restock_product.pop_request()

    assert (stored, len(waits)) == ([command_id], 2)
