"""The built-in fake payment gateway, Stripe-style test tokens, every attempt recorded.

Tokens: `tok_visa` is captured; `tok_decline` is declined; `tok_error` fails transiently
(GatewayUnavailable) on the first two attempts of an idempotency key, then is captured;
`tok_timeout` never answers: the attempt is recorded, nothing is charged, and the call
raises GatewayTimeout, so no reply (event) ever comes and the saga's step deadline fires;
`tok_refund_fail` is captured, and every refund of that charge is refused (RefundDeclined),
like Stripe's card whose refunds fail. Each may carry a suffix after an underscore
(`tok_visa_3f9a`) that makes one customer's token unlike any other, and behaves as the
token before it. Any other token is declined. `find_charge` answers from the same log:
the charge captured under a key, if any.

The log never keeps a token, nor does a decline's reason repeat it: an attempt records
the card's last four digits, as a card processor shows them (`4242` for `tok_visa`).

Like a real gateway, a key that succeeded once gives the same answer forever and never
charges again (the attempt is recorded as `replayed`), so a double charge shows up as two
captured charges for one order: `charges_captured(order_id)` counts the successful
charges whose idempotency key names the order.

`FakeGateway` keeps its log in the `payments_gateway_attempts` table so that it survives
across processes; `InMemoryFakeGateway` keeps it in a list, for unit tests.
"""

from __future__ import annotations

import os
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from functools import partial
from typing import Protocol, TypeVar
from uuid import UUID

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, close_old_connections, connections, router, transaction

from payments.domain.gateway import (
    ChargeDeclined,
    ChargeResult,
    GatewayTimeout,
    GatewayUnavailable,
    RefundDeclined,
    RefundResult,
)
from payments.models import GatewayAttempt
from platform_core.storage import pg
from platform_core.storage.backends import backend

T = TypeVar("T")

CHARGE, REFUND = "charge", "refund"
SUCCEEDED, REPLAYED, DECLINED, UNAVAILABLE, TIMEOUT = (
    "succeeded",
    "replayed",
    "declined",
    "unavailable",
    "timeout",
)
TRANSIENT_FAILURES = 2
# The test cards behind the tokens, by the digits a processor shows of them (Stripe's).
CARD_DIGITS = {
    "tok_visa": "4242",
    "tok_decline": "0002",
    "tok_error": "0119",
    "tok_timeout": "0077",
    "tok_refund_fail": "5126",
}
CAPTURED_CARDS = ("tok_visa", "tok_refund_fail")


def card_of(token: str) -> str:
    """The test token `token` stands for (`tok_visa` for `tok_visa_3f9a`), or "" when it
    is none of them."""
    return next((name for name in CARD_DIGITS if token == name or token.startswith(f"{name}_")), "")


@dataclass(frozen=True, kw_only=True)
class Attempt:
    operation: str
    idempotency_key: str
    outcome: str
    card_last4: str = ""
    amount: Decimal | None = None
    charge_id: str = ""
    refund_id: str = ""
    reason: str = ""


class AttemptLog(Protocol):
    def of_key(self, operation: str, idempotency_key: str) -> list[Attempt]: ...

    def captured(self, charge_id: str) -> Attempt | None:
        """The successful charge attempt that made `charge_id`, if any."""
        ...

    def add(self, attempt: Attempt) -> None: ...


def _decide_charge(log: AttemptLog, *, key: str, amount: Decimal, token: str) -> Attempt:
    earlier = log.of_key(CHARGE, key)
    card = card_of(token)
    attempt = Attempt(
        operation=CHARGE,
        idempotency_key=key,
        card_last4=CARD_DIGITS.get(card, ""),
        amount=amount,
        outcome="",
    )
    first = next((a for a in earlier if a.outcome == SUCCEEDED), None)
    if first is not None:
        # The first charge's answer, whatever card came with the repeat.
        attempt = replace(
            attempt,
            outcome=REPLAYED,
            charge_id=first.charge_id,
            amount=first.amount,
            card_last4=first.card_last4,
        )
    elif card in CAPTURED_CARDS or (card == "tok_error" and len(earlier) >= TRANSIENT_FAILURES):
        attempt = replace(attempt, outcome=SUCCEEDED, charge_id=f"ch_{uuid.uuid4().hex[:24]}")
    elif card == "tok_error":
        attempt = replace(attempt, outcome=UNAVAILABLE, reason="The gateway had an error.")
    elif card == "tok_timeout":
        attempt = replace(attempt, outcome=TIMEOUT, reason="The gateway did not answer.")
    elif card == "tok_decline":
        attempt = replace(attempt, outcome=DECLINED, reason="Your card was declined.")
    else:
        attempt = replace(attempt, outcome=DECLINED, reason="No such token.")
    log.add(attempt)
    return attempt


def _decide_refund(log: AttemptLog, *, key: str, charge_id: str) -> Attempt:
    attempt = Attempt(operation=REFUND, idempotency_key=key, charge_id=charge_id, outcome="")
    first = next((a for a in log.of_key(REFUND, key) if a.outcome == SUCCEEDED), None)
    if first is not None:
        attempt = replace(attempt, outcome=REPLAYED, refund_id=first.refund_id)
    elif (charge := log.captured(charge_id)) is None:
        attempt = replace(attempt, outcome=DECLINED, reason=f"No such charge: {charge_id!r}.")
    elif charge.card_last4 == CARD_DIGITS["tok_refund_fail"]:
        attempt = replace(attempt, outcome=DECLINED, reason="The charge cannot be refunded.")
    else:
        attempt = replace(attempt, outcome=SUCCEEDED, refund_id=f"re_{uuid.uuid4().hex[:24]}")
    log.add(attempt)
    return attempt


def _find_charge(log: AttemptLog, *, key: str) -> Attempt | None:
    return next((a for a in log.of_key(CHARGE, key) if a.outcome == SUCCEEDED), None)


def _result_of(attempt: Attempt) -> ChargeResult:
    assert attempt.amount is not None
    return ChargeResult(
        charge_id=attempt.charge_id, amount=attempt.amount, card_last4=attempt.card_last4
    )


def _answer_charge(attempt: Attempt) -> ChargeResult:
    if attempt.outcome in (SUCCEEDED, REPLAYED):
        return _result_of(attempt)
    if attempt.outcome == DECLINED:
        raise ChargeDeclined(attempt.reason)
    if attempt.outcome == TIMEOUT:
        raise GatewayTimeout(attempt.reason)
    raise GatewayUnavailable(attempt.reason)


def _answer_refund(attempt: Attempt) -> RefundResult:
    if attempt.outcome not in (SUCCEEDED, REPLAYED):
        raise RefundDeclined(attempt.reason)
    return RefundResult(refund_id=attempt.refund_id)


class _FakeGateway(ABC):
    """The token rules and the questions tests ask; subclasses keep the log."""

    def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> ChargeResult:
        decide = partial(_decide_charge, key=idempotency_key, amount=amount, token=token)
        return _answer_charge(self._decide(decide))

    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        found = self._look(partial(_find_charge, key=idempotency_key))
        return None if found is None else _result_of(found)

    def refund(self, *, idempotency_key: str, charge_id: str) -> RefundResult:
        decide = partial(_decide_refund, key=idempotency_key, charge_id=charge_id)
        return _answer_refund(self._decide(decide))

    @abstractmethod
    def attempts(self, reference: UUID | str = "") -> list[Attempt]:
        """Every attempt, oldest first, or those whose idempotency key names `reference`."""

    def charges_captured(self, reference: UUID | str) -> int:
        """How many distinct charges were captured for `reference` (an order id): more
        than one is a double charge."""
        return sum(
            1
            for attempt in self.attempts(reference)
            if attempt.operation == CHARGE and attempt.outcome == SUCCEEDED
        )

    def refunds_made(self, reference: UUID | str) -> int:
        return sum(
            1
            for attempt in self.attempts(reference)
            if attempt.operation == REFUND and attempt.outcome == SUCCEEDED
        )

    @abstractmethod
    def _decide(self, decide: Callable[[AttemptLog], Attempt]) -> Attempt:
        """Run `decide` against the log, atomically."""

    @abstractmethod
    def _look(self, look: Callable[[AttemptLog], T]) -> T:
        """Run `look` against the log as it is now (reading only)."""


class _MemoryLog:
    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    def of_key(self, operation: str, idempotency_key: str) -> list[Attempt]:
        return [
            a
            for a in self.attempts
            if a.operation == operation and a.idempotency_key == idempotency_key
        ]

    def captured(self, charge_id: str) -> Attempt | None:
        return next(
            (
                a
                for a in self.attempts
                if a.operation == CHARGE and a.outcome == SUCCEEDED and a.charge_id == charge_id
            ),
            None,
        )

    def add(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)


class InMemoryFakeGateway(_FakeGateway):
    """The fake gateway with its log in memory (one process, no database)."""

    def __init__(self) -> None:
        self._log = _MemoryLog()
        self._lock = threading.Lock()

    def attempts(self, reference: UUID | str = "") -> list[Attempt]:
        with self._lock:
            return [a for a in self._log.attempts if str(reference) in a.idempotency_key]

    def _decide(self, decide: Callable[[AttemptLog], Attempt]) -> Attempt:
        with self._lock:
            return decide(self._log)

    def _look(self, look: Callable[[AttemptLog], T]) -> T:
        with self._lock:
            return look(self._log)


def _attempt_of(row: GatewayAttempt) -> Attempt:
    return Attempt(
        operation=row.operation,
        idempotency_key=row.idempotency_key,
        outcome=row.outcome,
        card_last4=row.card_last4,
        amount=row.amount,
        charge_id=row.charge_id,
        refund_id=row.refund_id,
        reason=row.reason,
    )


# Every charge asks the log for its key's earlier attempts: on PostgreSQL a prepared
# statement, without building model instances.
_ATTEMPT_FIELDS = [field.name for field in fields(Attempt)]
_PG_OF_KEY = (
    f"SELECT {', '.join(_ATTEMPT_FIELDS)} FROM payments_gateway_attempts"
    " WHERE operation = %s AND idempotency_key = %s ORDER BY id"
)


class _DjangoLog:
    def __init__(self, using: str) -> None:
        self._using = using
        self._rows = GatewayAttempt.objects.using(using)

    def of_key(self, operation: str, idempotency_key: str) -> list[Attempt]:
        if backend(self._using).prepared:
            found = pg.fetchall(_PG_OF_KEY, [operation, idempotency_key], using=self._using)
            return [Attempt(**dict(zip(_ATTEMPT_FIELDS, row, strict=True))) for row in found]
        rows = self._rows.filter(operation=operation, idempotency_key=idempotency_key)
        return [_attempt_of(row) for row in rows.order_by("pk")]

    def captured(self, charge_id: str) -> Attempt | None:
        row = self._rows.filter(operation=CHARGE, outcome=SUCCEEDED, charge_id=charge_id).first()
        return None if row is None else _attempt_of(row)

    def add(self, attempt: Attempt) -> None:
        self._rows.create(
            operation=attempt.operation,
            idempotency_key=attempt.idempotency_key,
            outcome=attempt.outcome,
            card_last4=attempt.card_last4,
            amount=attempt.amount,
            charge_id=attempt.charge_id,
            refund_id=attempt.refund_id,
            reason=attempt.reason,
        )


class FakeGateway(_FakeGateway):
    """The fake gateway with its log in the `payments_gateway_attempts` table of `using`
    (by default the database the routers give that table).

    A gateway is another system: a call that happened stays recorded when the caller's
    transaction rolls back (a retried command must see its earlier attempts). So the log
    is written on a connection of its own, in a short-lived worker thread, committing at
    once. On PostgreSQL the default database serves. A SQLite file has one writer at a
    time, and the bus's transaction holds it while the handler runs: there, `using` must
    name a database alias of its own (another file), or every call inside a command is
    refused with ImproperlyConfigured instead of waiting for a lock that never frees.
    """

    def __init__(self, using: str | None = None) -> None:
        self._using = using or router.db_for_write(GatewayAttempt)

    def attempts(self, reference: UUID | str = "") -> list[Attempt]:
        rows = GatewayAttempt.objects.using(self._using).order_by("pk")
        if reference:
            rows = rows.filter(idempotency_key__contains=str(reference))
        return [_attempt_of(row) for row in rows]

    def _decide(self, decide: Callable[[AttemptLog], Attempt]) -> Attempt:
        self._refuse_a_locked_sqlite_file()
        return _on_own_connection(partial(self._decide_once_per_key, decide))

    def _look(self, look: Callable[[AttemptLog], T]) -> T:
        return _on_own_connection(partial(look, _DjangoLog(self._using)))

    def _decide_once_per_key(self, decide: Callable[[AttemptLog], Attempt]) -> Attempt:
        log = _DjangoLog(self._using)
        try:
            with transaction.atomic(using=self._using):
                return decide(log)
        except IntegrityError:
            # Another process succeeded with this key meanwhile: this call replays it.
            with transaction.atomic(using=self._using):
                return decide(log)

    def _refuse_a_locked_sqlite_file(self) -> None:
        if backend(self._using).single_writer and connections[self._using].in_atomic_block:
            raise ImproperlyConfigured(
                f"FakeGateway(using={self._using!r}) cannot write to a SQLite database the"
                " current transaction holds; give it a database alias of its own."
            )


def _on_own_connection(work: Callable[[], T]) -> T:
    """Run `work` in the gateway's own thread, so on a database connection (and
    transaction) of its own. The thread lives as long as the process; its connection is
    kept or closed after each call as Django does at the end of a request (CONN_MAX_AGE),
    and dropped when broken."""

    def run() -> T:
        close_old_connections()
        for connection in connections.all(initialized_only=True):
            # Checked before each call whatever CONN_HEALTH_CHECKS says (the worker runs
            # without): a connection that died since the last charge would fail this one,
            # and the gateway stands for a service of its own, not the command's database.
            if connection.connection is not None and not connection.is_usable():
                connection.close()
        try:
            return work()
        finally:
            close_old_connections()

    return _gateway_thread().submit(run).result()


_executors: dict[int, ThreadPoolExecutor] = {}
_executors_lock = threading.Lock()


def _gateway_thread() -> ThreadPoolExecutor:
    # One per process: a worker forked from a parent that made one must make its own.
    with _executors_lock:
        pid = os.getpid()
        if pid not in _executors:
            _executors[pid] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fake-gateway")
        return _executors[pid]
