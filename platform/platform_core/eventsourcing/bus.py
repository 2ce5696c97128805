"""The in-process command bus: one transaction per command, bounded retry on conflicts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from platform_core.eventsourcing.eventstore import AppendResult, ConcurrencyError, LogPosition
from platform_core.eventsourcing.messages import MessageContext, ensure_context, message_context
from platform_core.eventsourcing.retry import RetryPolicy

logger = logging.getLogger(__name__)

# Contending writers spread out: up to 10 ms before the second attempt, 20 before the third...
CONFLICT_RETRY = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=1.0)

Handler = Callable[[Any], Any]
TransactionFactory = Callable[[], AbstractContextManager[Any]]


class UnknownCommand(LookupError):
    pass


@dataclass(kw_only=True)
class CommandOutcome:
    """What handling a command did: the handler's return value and the log it wrote."""

    result: Any = None
    positions: list[LogPosition] = field(default_factory=list)

    @property
    def last_position(self) -> LogPosition | None:
        return max(self.positions) if self.positions else None


_outcome: ContextVar[CommandOutcome | None] = ContextVar("command_outcome", default=None)


def record_append(result: AppendResult) -> None:
    """Repository hook: note where the command in progress wrote."""
    outcome = _outcome.get()
    if outcome is not None:
        outcome.positions.append(result.log_position)


class CommandBus:
    """Routes each command to its handler inside a fresh transaction.

    Events the handler stores carry the command's id as causation id and the caller's
    correlation id. A `ConcurrencyError` (someone wrote the same stream first) reruns the
    handler on fresh state, at most `max_attempts` times in all, after a short random
    pause that grows with each attempt, so that contending writers spread out.
    """

    def __init__(
        self,
        handlers: Mapping[type[Any], Handler],
        *,
        transaction: TransactionFactory,
        retry: RetryPolicy = CONFLICT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._handlers = dict(handlers)
        self._transaction = transaction
        self._retry = retry
        self._sleep = sleep

    def handle(
        self,
        command: Any,
        *,
        context: MessageContext | None = None,
        first: Callable[[], None] | None = None,
    ) -> CommandOutcome:
        """Run the command's handler in a transaction of its own (retried on a concurrent
        write). `first` runs in that transaction before the handler, on every attempt:
        a receiver's inbox claim, which may raise to stop before the handler."""
        handler = self._handlers.get(type(command))
        if handler is None:
            raise UnknownCommand(type(command).__name__)
        scope = (context or ensure_context()).caused_by(str(command.command_id))
        for attempt in range(1, self._retry.max_attempts + 1):
            outcome = CommandOutcome()
            token = _outcome.set(outcome)
            try:
                with message_context(scope), self._transaction():
                    if first is not None:
                        first()
                    outcome.result = handler(command)
                return outcome
            except ConcurrencyError:
                if attempt == self._retry.max_attempts:
                    raise
                logger.info("retrying %s after a concurrent write", type(command).__name__)
                self._sleep(self._retry.delay(attempt))
            finally:
                _outcome.reset(token)
        raise AssertionError("unreachable")
