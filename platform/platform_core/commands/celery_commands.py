"""Commands between bounded contexts as Celery tasks: sent after commit, handled once.

A context's `tasks.py` declares one task per command it accepts, primitives in:

    @command_task("orders")
    def confirm_order(task: CommandTask, *, order_id: str, command_id: str) -> str:
        return task.execute(ConfirmOrder(order_id=UUID(order_id), command_id=UUID(command_id)))

and a sender schedules it with `send_command(confirm_order, order_id=str(order_id))`: the
task is written to the outbox with the sender's transaction and leaves once it commits
(`platform_core.commands.command_outbox`), carrying the sender's message context (correlation,
causation, actor) in a task header.

Delivery is at least once (late acks, re-delivery when a worker dies), the effect once:
`CommandTask.execute` records the command id in the inbox in the same transaction as the
command's events, so a duplicate delivery is a no-op. Transient failures are retried with
exponential backoff and full jitter; a domain error or a malformed message is not. A task
that fails for good goes to the dead-letter store (source `celery:<queue>`), from where
`manage.py dead_letters retry ID` runs it again (`redeliver`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from celery import current_app, shared_task  # type: ignore[import-untyped]
from celery.exceptions import Reject, Retry  # type: ignore[import-untyped]
from celery.signals import task_postrun  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, close_old_connections, connections

from platform_core.commands import dead_letter_queues
from platform_core.commands.celery_queues import PlatformTask
from platform_core.commands.command_outbox import CONTEXT_HEADER, command_envelope, command_failure
from platform_core.eventsourcing.bus import CommandBus, UnknownCommand
from platform_core.eventsourcing.errors import DomainError
from platform_core.eventsourcing.messages import (
    MessageContext,
    clean_correlation_id,
    ensure_context,
    message_context,
    new_correlation_id,
)
from platform_core.eventsourcing.retry import RetryPolicy
from platform_core.messaging import dead_letters
from platform_core.messaging.inbox import claim
from platform_core.messaging.outbox import Outbox
from platform_core.models import DeadLetter
from platform_core.storage.connectivity import database_reachable

logger = logging.getLogger(__name__)

PROCESSED, DUPLICATE = "processed", "duplicate"

# No later attempt can succeed: the command breaks a rule, or the message is malformed
# (an id that does not parse, a missing argument). These go straight to the dead letters.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (DomainError, UnknownCommand, ValueError, TypeError)


class Collaborators(Protocol):
    """What command tasks run against (the `Runtime` is one)."""

    @property
    def bus(self) -> CommandBus: ...

    @property
    def outbox(self) -> Outbox: ...


_collaborators: Callable[[], Collaborators] | None = None


def provide(collaborators: Callable[[], Collaborators]) -> None:
    """Give command tasks and `send_command` their bus and outbox. The composition root
    calls this once at start-up (`config.apps`); Celery instantiates tasks itself, so
    they cannot take them in a constructor."""
    global _collaborators
    _collaborators = collaborators


def _wired() -> Collaborators:
    if _collaborators is None:
        raise ImproperlyConfigured("command tasks have no bus: call provide() at start-up")
    return _collaborators()


# The retries of a command that an outage of the database caused (`retry_outage`),
# 0.5 s up to 10 s apart.
OUTAGE_RETRIES_HEADER = "platform_outage_retries"
OUTAGE_RETRY = RetryPolicy(max_attempts=1_000_000, base_delay=0.5, max_delay=10)

# Storing a dead letter while the database is away: 0.5 s, doubling, up to 30 s.
STORE_RETRY = RetryPolicy(base_delay=0.5, max_delay=30)


class _HandledBefore(Exception):
    """The command's id is in the inbox already: nothing to do."""


class CommandTask(PlatformTask):
    """Base of the tasks that carry a command to a bounded context's queue.

    Each task (made by `command_task(queue)`) names the queue of the context that accepts
    it: the router sends it there, and the queue scopes the inbox (`command:<queue>`) and
    the dead letters (`celery:<queue>`).
    """

    context_queue: str | None = None

    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = (Exception,)
    dont_autoretry_for = PERMANENT_ERRORS
    max_retries = 5
    # Retry n waits a random 0..min(retry_backoff_max, retry_backoff * 2**n) seconds.
    retry_backoff = 1
    retry_backoff_max = 60
    retry_jitter = True
    outage_retry = OUTAGE_RETRY

    @property
    def command_queue(self) -> str:
        if not self.context_queue:
            raise TypeError(f"command task {self.name} names no context_queue")
        return self.context_queue

    @property
    def source(self) -> str:
        return f"celery:{self.command_queue}"

    def execute(self, command: Any) -> str:
        """Run `command` through the bus unless this context already did (by command id).

        The inbox row and the command's events commit together or not at all: the claim
        runs first in the bus's own transaction (no savepoint nested in another one).
        """
        consumer = f"command:{self.command_queue}"

        def claim_it() -> None:
            if not claim(consumer, [str(command.command_id)]):
                raise _HandledBefore

        reconnected = False
        while True:
            connection = connections[DEFAULT_DB_ALIAS].connection
            try:
                _wired().bus.handle(command, context=self.message_context(), first=claim_it)
            except _HandledBefore:
                logger.info("%s %s was handled before", type(command).__name__, command.command_id)
                return DUPLICATE
            except DatabaseError as error:
                if self.request.is_eager:
                    raise
                if not database_reachable():
                    # The database is down: not the command's fault. Retry for as long as
                    # the outage lasts, backing off, rather than dead-letter it.
                    raise self.retry_outage(error) from error
                if (
                    not reconnected
                    and connection is not None
                    and (connections[DEFAULT_DB_ALIAS].connection is not connection)
                ):
                    # The connection kept from an earlier task had died (the server
                    # restarted, an idle timeout) and was replaced: run once more on the
                    # new one, as Django's per-request health check would have, without
                    # its query on every task (CONN_HEALTH_CHECKS off on the worker).
                    logger.info(
                        "%s %s: reconnected; running it again", self.name, command.command_id
                    )
                    reconnected = True
                    continue
                raise  # counted like any failure: retried, then dead-lettered
            return PROCESSED

    @property
    def outage_retries(self) -> int:
        """How many retries of this command an outage of the database caused."""
        count = (self.request.headers or {}).get(OUTAGE_RETRIES_HEADER)
        return count if type(count) is int and count > 0 else 0

    def retry_outage(self, error: Exception) -> Retry:
        """Send the command again later, for an outage of the database: no attempt of the
        command's. Unlike Celery's `retry`, the new message keeps the request's count of
        retries, which `max_retries` limits; it counts the outage's in a header of its
        own. Backed off by `outage_retry`, jittered, so that the commands an outage held
        do not all come back at one instant."""
        outages = self.outage_retries + 1
        wait = self.outage_retry.delay(outages)
        again = self.signature_from_request(
            countdown=wait,
            retries=self.request.retries,
            headers={**(self.request.headers or {}), OUTAGE_RETRIES_HEADER: outages},
        )
        try:
            again.apply_async()
        except Exception as failed:  # as Celery's own retry answers a broker that refuses
            raise Reject(failed, requeue=False) from failed
        return Retry(exc=error, when=wait, sig=again)

    def message_context(self) -> MessageContext:
        """The context the sender put in the task's headers (a fresh one if none)."""
        sent = (self.request.headers or {}).get(CONTEXT_HEADER) or {}
        return MessageContext(
            correlation_id=clean_correlation_id(sent.get("correlation_id")) or new_correlation_id(),
            causation_id=sent.get("causation_id"),
            actor=sent.get("actor") or self.source,
            tenant=sent.get("tenant"),
        )

    @classmethod
    def on_bound(cls, app: Any) -> None:
        task_postrun.connect(_leave_message_context, weak=False, dispatch_uid=__name__)

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        if not self.request.is_eager:
            # A worker keeping its connection across tasks (CONN_MAX_AGE with
            # CELERY_DB_REUSE_MAX) drops it here when broken or too old, as Django does
            # at each request: a database restart then costs one retry, not many.
            close_old_connections()
        # Entered here and left on `task_postrun`, so that Celery's own log lines about
        # the run (retry, success, failure) carry the message context too.
        scope = contextlib.ExitStack()
        scope.enter_context(message_context(self.message_context()))
        self.request.message_context_scope = scope

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Retries are exhausted or the error is permanent: dead-letter the command."""
        failure = command_failure(
            task=self.name,
            queue=self.command_queue,
            message_id=str(kwargs.get("command_id") or task_id),
            payload=json.dumps(kwargs, sort_keys=True, default=str),
            context=self.message_context(),
            attempts=self.request.retries + 1,
            task_id=task_id,
        )
        letter = self._store(failure, exc)
        if letter is not None:
            logger.error(
                "%s[%s] dead-lettered as %s after %d attempt(s): %r",
                *(self.name, task_id, letter.pk, failure.attempts, exc),
            )

    def _store(self, failure: dead_letters.Failure, exc: Exception) -> DeadLetter | None:
        """Record the letter. On a worker, keep trying until the store takes it: the
        message is acknowledged only once this returns, so a worker killed meanwhile has
        it redelivered, and none is acknowledged unrecorded. Run eagerly (in the sender's
        request), a store that refuses is logged."""
        return dead_letters.record_until_stored(
            failure,
            exc,
            delays=STORE_RETRY,
            sleep=time.sleep,
            who=self.name,
            give_up=bool(self.request.is_eager),
        )


def _leave_message_context(task: Any = None, **_: Any) -> None:
    """`task_postrun` receiver: restore the context the run found (an eager run happens
    in the sender's thread), whatever the outcome, retries included."""
    scope = getattr(getattr(task, "request", None), "message_context_scope", None)
    if scope is not None:
        scope.close()


def command_task(context_queue: str, **options: Any) -> Callable[[Callable[..., str]], Any]:
    """Declare a command task: `shared_task(base=CommandTask, bind=True, ...)` that the
    router sends to `context_queue`. The decorated function gets the task first."""
    decorate: Callable[[Callable[..., str]], Any] = shared_task(
        base=CommandTask, bind=True, context_queue=context_queue, **options
    )
    return decorate


def send_command(task: Any, /, **kwargs: Any) -> str:
    """Send a command task with the current transaction; answers its command id.

    The task is written to the outbox in the caller's transaction and the relay publishes
    it after commit (`platform_core.commands.command_outbox`): it leaves if and only if the
    transaction commits, even when the broker is down at that moment. A `command_id` is
    made up unless given: give the same one to re-send a command idempotently (a saga
    re-sending a step).
    """
    command_id = kwargs["command_id"] = str(kwargs.get("command_id") or uuid.uuid4())
    _wired().outbox.add([command_envelope(task, kwargs, ensure_context())])
    return command_id


def redeliver(letter: DeadLetter) -> bool:
    """Run a dead-lettered command task again, in this process, with the same kwargs
    (hence the same command id) and message context; True once it has run. A message
    RabbitMQ dead-lettered is published again to its queue instead (True once the broker
    has it; see `dead_letter_queues`).

    It goes through the task's usual path (inbox, bus, retries, run at once here rather
    than backed off), so a command that took effect meanwhile is a no-op, and a new
    failure updates the dead letter.
    """
    app = current_app._get_current_object()
    if dead_letter_queues.from_broker(letter):
        return dead_letter_queues.republish(letter, app)
    app.autodiscover_tasks(force=True)  # the tasks modules of every installed app
    name = str(letter.headers.get("task", ""))
    if name not in app.tasks:
        raise dead_letters.CannotRetry(f"no task {name!r} in this process")
    sent = {k: letter.headers.get(k) for k in ("correlation_id", "causation_id", "actor", "tenant")}
    result = app.tasks[name].apply(
        kwargs=json.loads(letter.payload),
        headers={CONTEXT_HEADER: {k: v for k, v in sent.items() if v}},
        # A task without a command id is known by its task id: failing again, it
        # updates this letter rather than leave a new one.
        task_id=letter.headers.get("task_id") or None,
        throw=False,
    )
    return bool(result.successful())


def redelivery_paths() -> dict[str, dead_letters.Redeliver]:
    """`redeliver` for the dead-letter source of every command queue of the app."""
    queues = current_app._get_current_object().conf.task_queues or ()
    return {f"celery:{queue.name}": redeliver for queue in queues}
