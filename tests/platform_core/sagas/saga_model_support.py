"""The order-fulfillment system as a model-based test drives it: the four contexts' real
command handlers on an in-memory event store with transactions, the fake gateway with
hooks for what a worker sees (another command running while it waits on the card
network, a worker killed after the charge), the real saga manager and consumer group on
the test database, and a hand-driven clock. Messages in flight are plain lists the test
delivers from in any order, any number of times."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from types import ModuleType
from typing import Any, TypeVar

from django.db import transaction

from config.bootstrap import build_codec
from config.command_bus import build_handlers
from inventory import integration as inventory_integration
from inventory.commands import RegisterProduct
from orders import integration as orders_integration
from orders.commands import OrderItem, PlaceOrder, RequestOrderCancellation
from orders.domain.order import ProductQuote
from orders.events import ShippingAddress
from orders.sagas import order_fulfillment
from payments.commands import ProcessPayment
from payments.domain.gateway import ChargeResult, GatewayUnavailable
from payments.gateway import InMemoryFakeGateway
from platform_core.eventsourcing.aggregate import Aggregate
from platform_core.eventsourcing.bus import CommandBus
from platform_core.eventsourcing.errors import DomainError
from platform_core.eventsourcing.eventstore import (
    LOG_START,
    AppendResult,
    ConcurrencyError,
    LogPosition,
    NewEvent,
    RecordedEvent,
)
from platform_core.eventsourcing.memory import InMemoryEventStore
from platform_core.eventsourcing.repository import Repository
from platform_core.eventsourcing.retry import RetryPolicy
from platform_core.messaging.consumers import ConsumerGroup
from platform_core.messaging.envelope import Envelope
from platform_core.messaging.outbox import IntegrationEvents
from platform_core.sagas.manager import SagaManager
from shipping.carrier import FakeCarrier
from shipping.commands import DispatchShipment

A = TypeVar("A", bound=Aggregate[Any])

PRICES = {"TEA": Decimal("4.00"), "MUG": Decimal("7.50")}
CUSTOMER = 7
ADDRESS = ShippingAddress(name="Ada", line1="1 Road", city="Leeds", postal_code="LS1", country="GB")
STOCK = 6
STEP = timedelta(seconds=30)
GIVE_UP = timedelta(minutes=10)


class Duplicate(Exception):
    """The command's id is in its context's inbox: nothing to do."""


class WorkerKilled(Exception):
    """The worker died mid-command: its transaction is gone, the broker redelivers."""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


# A command's inbox entry: the context that ran it (each has its own inbox, as each
# Celery queue does) and its id.
Claim = tuple[str, uuid.UUID]


@dataclass
class _Transaction:
    appends: list[tuple[str, str, int, list[NewEvent]]] = field(default_factory=list)
    messages: list[Envelope] = field(default_factory=list)
    claims: set[Claim] = field(default_factory=set)
    deposits: dict[str, str] = field(default_factory=dict)
    discards: set[str] = field(default_factory=set)


class TransactionalStore:
    """An event store, outbox, command inbox and payment token vault whose writes become
    visible together when the command's transaction commits, or not at all; a transaction
    that wrote a stream someone else wrote first fails at commit (ConcurrencyError), as
    the unique (stream, version) constraint makes it fail in PostgreSQL."""

    def __init__(self) -> None:
        self._committed = InMemoryEventStore()
        self._open: list[_Transaction] = []
        self.inbox: set[Claim] = set()
        self.published: list[Envelope] = []
        self.vault: dict[str, str] = {}

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        current = _Transaction()
        self._open.append(current)
        try:
            yield
        finally:
            self._open.pop()
        self._commit(current)

    def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        return self._committed.read_stream(stream_id, after_version)

    def read_all(self, after: LogPosition = LOG_START, limit: int = 1000) -> list[RecordedEvent]:
        return self._committed.read_all(after, limit)

    def head(self) -> LogPosition:
        return self._committed.head()

    def append(
        self, stream_id: str, stream_type: str, expected_version: int, events: Sequence[NewEvent]
    ) -> AppendResult:
        self._check(stream_id, expected_version)
        self._open[-1].appends.append((stream_id, stream_type, expected_version, list(events)))
        return AppendResult(stream_version=expected_version + len(events), log_position=LOG_START)

    def add(self, envelopes: Sequence[Envelope]) -> None:
        """The outbox's port: messages leave with the transaction's commit."""
        self._open[-1].messages.extend(envelopes)

    def claim(self, context: str, command_id: uuid.UUID) -> None:
        if (context, command_id) in self.inbox:
            raise Duplicate(str(command_id))
        self._open[-1].claims.add((context, command_id))

    def deposit(self, *, order_id: uuid.UUID, token: str) -> str:
        """The vault's ports (orders deposit, payments redeem and discard)."""
        reference = f"pvr_{uuid.uuid4().hex}"
        self._open[-1].deposits[reference] = token
        return reference

    def redeem(self, reference: str) -> str | None:
        current = self._open[-1]
        if reference in current.discards:
            return None
        return current.deposits.get(reference, self.vault.get(reference))

    def discard(self, reference: str) -> None:
        self._open[-1].discards.add(reference)

    def _check(self, stream_id: str, expected_version: int) -> None:
        if len(self._committed.read_stream(stream_id)) != expected_version:
            raise ConcurrencyError(stream_id, expected_version)

    def _commit(self, done: _Transaction) -> None:
        for stream_id, _, expected, _ in done.appends:
            self._check(stream_id, expected)
        if done.claims & self.inbox:
            raise Duplicate("a concurrent delivery of the same command committed first")
        for stream_id, stream_type, expected, events in done.appends:
            self._committed.append(stream_id, stream_type, expected, events)
        self.inbox |= done.claims
        self.published += done.messages
        self.vault.update(done.deposits)
        for reference in done.discards:
            self.vault.pop(reference, None)


class ModelGateway(InMemoryFakeGateway):
    """The fake gateway, with what one worker sees of the others: `meanwhile` runs inside
    the next charge call, before the charge lands or after; `kill_after_charge` kills the
    worker once the charge has landed."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: Callable[[], None] | None = None
        self.meanwhile_after_landing = False
        self.kill_after_charge = False

    def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> ChargeResult:
        meanwhile, self.meanwhile = self.meanwhile, None
        kill, self.kill_after_charge = self.kill_after_charge, False
        if meanwhile is not None and not self.meanwhile_after_landing:
            meanwhile()
        result = super().charge(idempotency_key=idempotency_key, amount=amount, token=token)
        if meanwhile is not None and self.meanwhile_after_landing:
            meanwhile()
        if kill:
            raise WorkerKilled("killed after the gateway charged")
        return result


class FixedCatalog:
    def quote(self, skus: Sequence[str]) -> dict[str, ProductQuote]:
        return {
            sku: ProductQuote(name=sku.title(), unit_price=PRICES[sku])
            for sku in skus
            if sku in PRICES
        }


class Fulfillment:
    """Participants, saga and the messages in flight between them."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.store = TransactionalStore()
        self.codec = build_codec()
        self.gateway = ModelGateway()
        handlers = build_handlers(
            repository=self._repository,
            gateway=self.gateway,
            vault=self.store,
            catalog=FixedCatalog(),
            carrier=FakeCarrier(),
        )
        self.bus = CommandBus(handlers, transaction=self.store.transaction, sleep=_no_pause)
        self.definition = order_fulfillment(step_deadline=STEP, give_up_after=GIVE_UP)
        self.saga = SagaManager(self.definition, send=self._sent_after_commit, now=self.clock)
        self.consumer = ConsumerGroup(
            self.definition.name,
            dict.fromkeys(self.definition.event_types, self.saga.handle),
            topics=[],
            batch=self.saga.batch,
            retry=RetryPolicy(max_attempts=1),
            sleep=_no_pause,
        )
        self.commands: list[Any] = []  # on the way to a context's worker
        self.replies: list[Envelope] = []  # on the way to the saga's consumer
        self.policies = [
            orders_integration.inbound(self.commands.append),
            inventory_integration.inbound(self.commands.append),
        ]
        self.dead_letters: list[tuple[Any, Exception]] = []
        for sku in PRICES:
            self.bus.handle(
                RegisterProduct(sku=sku, name=sku.title(), price=PRICES[sku], initial_stock=STOCK)
            )
        self.collect_published()

    def repository(self, aggregate_type: type[A]) -> Repository[A]:
        return Repository(aggregate_type, store=self.store, codec=self.codec)

    def execute(self, command: Any) -> str:
        """Run a command as a context's worker does (inbox, bus); what came of it."""
        try:
            context = type(command).__module__.partition(".")[0]  # orders, inventory, ...
            self.bus.handle(command, first=partial(self.store.claim, context, command.command_id))
        except Duplicate:
            return "duplicate"
        except Exception as error:
            if _transient(error):
                return "failed"
            self.dead_letters.append((command, error))
            return "dead-lettered"
        finally:
            self.collect_published()
        return "done"

    def place(self, order_id: uuid.UUID, sku: str, quantity: int, token: str) -> None:
        self.bus.handle(
            PlaceOrder(
                order_id=order_id,
                customer_id=CUSTOMER,
                items=(OrderItem(sku=sku, quantity=quantity),),
                shipping_address=ADDRESS,
                payment_token=token,
            )
        )
        self.collect_published()

    def cancel(self, order_id: uuid.UUID) -> None:
        """The customer asks to cancel (over the API: a refusal, too late, is a 409)."""
        self._over_the_api(
            RequestOrderCancellation(
                order_id=order_id, reason="changed my mind", requested_by=CUSTOMER
            )
        )

    def dispatch(self, order_id: uuid.UUID) -> None:
        """Staff dispatch the order's shipment (a 404 or 409 when there is none to)."""
        self._over_the_api(DispatchShipment(shipment_id=f"shp-{order_id}"))

    def _over_the_api(self, command: Any) -> None:
        with contextlib.suppress(DomainError):
            self.bus.handle(command)
        self.collect_published()

    def race(self, charge: ProcessPayment, other: Any, after_landing: bool) -> None:
        """Run `charge` (taken off the queue) with `other` running to its commit on
        another worker while the charge waits on the gateway, before its charge lands or
        after; what fails goes back on the queue."""

        def meanwhile() -> None:
            self.commands.remove(other)
            if self.execute(other) == "failed":
                self.commands.append(other)

        self.gateway.meanwhile, self.gateway.meanwhile_after_landing = meanwhile, after_landing
        try:
            if self.execute(charge) == "failed":
                self.commands.append(charge)
        finally:
            self.gateway.meanwhile = None  # unused when this charge never reached the gateway

    def deliver_replies(self, replies: Sequence[Envelope]) -> None:
        """One poll of the saga's consumer: the batch in one transaction, with its inbox."""
        self.consumer.handle_batch(replies)

    def deliver_every_reply(self) -> None:
        batch, self.replies[:] = list(self.replies), []
        self.deliver_replies(batch)

    def run_oldest_command(self) -> str:
        """The worker takes the oldest command; one that fails goes to the back."""
        command = self.commands.pop(0)
        outcome = self.execute(command)
        if outcome == "failed":
            self.commands.append(command)
        return outcome

    def collect_published(self) -> None:
        """Replies to the saga's consumer; what the orders and inventory consumers turn
        into commands (an order shipped, stock committed) to the workers."""
        wanted = self.definition.event_types
        self.replies += [e for e in self.store.published if e.type in wanted]
        for envelope in self.store.published:
            for policy in self.policies:
                if envelope.type in policy:
                    policy[envelope.type](envelope)
        self.store.published.clear()

    def _repository(
        self, aggregate_type: type[A], integration: ModuleType, *, long_lived: bool = False
    ) -> Repository[A]:
        publisher = IntegrationEvents(
            source=integration.SOURCE,
            topic=integration.TOPIC,
            translate=integration.outbound,
            codec=self.codec,
            outbox=self.store,  # type: ignore[arg-type]
        )
        return Repository(
            aggregate_type, store=self.store, codec=self.codec, publish=publisher.publish
        )

    def _sent_after_commit(self, command: Any) -> None:
        # As through the outbox: a command leaves only if the saga's transaction commits.
        transaction.on_commit(partial(self.commands.append, command))


def _transient(error: Exception) -> bool:
    return isinstance(error, GatewayUnavailable | ConcurrencyError | WorkerKilled)


def _no_pause(_: float) -> None:
    return None
