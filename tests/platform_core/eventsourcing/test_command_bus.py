"""The command bus: message context on every event, bounded retry on conflicts."""

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from uuid import UUID, uuid4

import pytest

import inventory.events
from inventory.commands import RegisterProduct, RestockProduct
from inventory.domain.stock import InvalidRestock, StockItem
from inventory.handlers import register_product, restock_product
from platform_core.eventsourcing.bus import (
    CommandBus,
    TransactionFactory,
    UnknownCommand,
    record_append,
)
from platform_core.eventsourcing.eventstore import (
    LOG_START,
    AppendResult,
    ConcurrencyError,
    EventStore,
    LogPosition,
    NewEvent,
    RecordedEvent,
)
from platform_core.eventsourcing.memory import InMemoryEventStore
from platform_core.eventsourcing.messages import MessageContext, current_context
from platform_core.eventsourcing.repository import Repository
from platform_core.eventsourcing.retry import RetryPolicy
from platform_core.eventsourcing.serialization import EventCodec

CODEC = EventCodec(inventory.events.EVENTS)


@dataclass(frozen=True, kw_only=True)
class StockUp:
    """A test command whose handler stores two events at once."""

    sku: str
    command_id: UUID = field(default_factory=uuid4)


class RivalWritesFirst:
    """An event store where another writer appends to the stream just before each of
    our first `times` appends, as a concurrent request would."""

    def __init__(self, inner: InMemoryEventStore, *, times: int) -> None:
        self._inner = inner
        self._rivals_left = times
        self.rival_writes = 0

    def append(
        self, stream_id: str, stream_type: str, expected_version: int, events: Sequence[NewEvent]
    ) -> AppendResult:
        if self._rivals_left:
            self._rivals_left -= 1
            self.rival_writes += 1
            rival = stock_repository(self._inner).get("MUG-1")
            rival.restock(1)
            stock_repository(self._inner).save(rival)
        return self._inner.append(stream_id, stream_type, expected_version, events)

    def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        return self._inner.read_stream(stream_id, after_version)

    def read_all(self, after: LogPosition = LOG_START, limit: int = 1000) -> list[RecordedEvent]:
        return self._inner.read_all(after, limit)

    def head(self) -> LogPosition:
        return self._inner.head()


def stock_repository(store: EventStore) -> Repository[StockItem]:
    return Repository(StockItem, store=store, codec=CODEC, on_append=record_append)


def stock_up(command: StockUp, *, stock: Repository[StockItem]) -> None:
    item = StockItem.register(sku=command.sku, name="Mug", price=Decimal("7.50"), initial_stock=1)
    item.restock(4)
    stock.save(item)


def build_bus(
    store: EventStore,
    *,
    max_attempts: int = 3,
    transaction: TransactionFactory = contextlib.nullcontext,
) -> CommandBus:
    stock = stock_repository(store)
    return CommandBus(
        {
            RegisterProduct: partial(register_product, stock=stock),
            RestockProduct: partial(restock_product, stock=stock),
            StockUp: partial(stock_up, stock=stock),
        },
        transaction=transaction,
        retry=RetryPolicy(max_attempts=max_attempts, base_delay=0.01),
    )


def register_mug(store: InMemoryEventStore) -> None:
    item = StockItem.register(sku="MUG-1", name="Mug", price=Decimal("7.50"), initial_stock=10)
    stock_repository(store).save(item)


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


def test_every_event_carries_the_correlation_the_command_id_and_the_actor(store):
    bus = build_bus(store)
    command = StockUp(sku="MUG-1")

    bus.handle(command, context=MessageContext(correlation_id="req-42", actor="user:7"))

    metadata = [e.metadata for e in store.read_stream("stock-MUG-1")]
    assert len(metadata) == 2
    assert {(m.correlation_id, m.causation_id, m.actor) for m in metadata} == {
        ("req-42", str(command.command_id), "user:7")
    }
    assert len({m.event_id for m in metadata}) == 2


def test_commands_of_one_request_share_its_correlation_but_not_their_causation(store):
    bus = build_bus(store)
    context = MessageContext(correlation_id="req-43", actor="user:7")
    register = RegisterProduct(sku="MUG-1", name="Mug", price=Decimal("7.50"), initial_stock=1)
    restock = RestockProduct(sku="MUG-1", quantity=2)

    bus.handle(register, context=context)
    bus.handle(restock, context=context)

    assert [
        (e.metadata.correlation_id, e.metadata.causation_id)
        for e in store.read_stream("stock-MUG-1")
    ] == [("req-43", str(register.command_id)), ("req-43", str(restock.command_id))]


def test_a_command_without_a_context_starts_a_new_correlation(store):
    bus = build_bus(store)

    bus.handle(StockUp(sku="MUG-1"))

    correlations = {e.metadata.correlation_id for e in store.read_stream("stock-MUG-1")}
    assert len(correlations) == 1
    assert None not in correlations
    assert current_context() is None


def test_the_outcome_tells_what_the_handler_returned_and_where_it_wrote(store):
    bus = build_bus(store)

    outcome = bus.handle(StockUp(sku="MUG-1"))

    assert outcome.result is None
    assert outcome.positions == [store.head()]
    assert outcome.last_position == store.head()


def test_a_conflict_is_retried_on_fresh_state_until_it_succeeds(store):
    register_mug(store)
    racing = RivalWritesFirst(store, times=1)
    bus = build_bus(racing, max_attempts=3)

    outcome = bus.handle(RestockProduct(sku="MUG-1", quantity=5))

    assert racing.rival_writes == 1
    assert [e.version for e in store.read_stream("stock-MUG-1")] == [1, 2, 3]
    assert stock_repository(store).get("MUG-1").state.on_hand == 10 + 1 + 5
    assert outcome.positions == [store.head()], "only the attempt that won reports a position"


def test_the_bus_gives_up_after_max_attempts(store):
    register_mug(store)
    racing = RivalWritesFirst(store, times=10)
    bus = build_bus(racing, max_attempts=3)

    with pytest.raises(ConcurrencyError):
        bus.handle(RestockProduct(sku="MUG-1", quantity=5))

    assert racing.rival_writes == 3
    assert stock_repository(store).get("MUG-1").state.on_hand == 10 + 3


def test_each_attempt_runs_in_a_transaction_of_its_own_that_sees_the_failure(store):
    register_mug(store)
    outcomes: list[type[BaseException] | None] = []

    @contextlib.contextmanager
    def transaction() -> Iterator[None]:
        try:
            yield
        except BaseException as error:
            outcomes.append(type(error))
            raise
        outcomes.append(None)

    bus = build_bus(RivalWritesFirst(store, times=2), transaction=transaction)

    bus.handle(RestockProduct(sku="MUG-1", quantity=5))

    assert outcomes == [ConcurrencyError, ConcurrencyError, None]


def test_first_runs_inside_each_attempts_transaction_and_can_stop_the_handler(store):
    register_mug(store)
    log: list[str] = []

    @contextlib.contextmanager
    def transaction() -> Iterator[None]:
        log.append("begin")
        yield
        log.append("commit")

    bus = build_bus(RivalWritesFirst(store, times=1), transaction=transaction)
    bus.handle(RestockProduct(sku="MUG-1", quantity=5), first=lambda: log.append("claim"))

    assert log == ["begin", "claim", "begin", "claim", "commit"], "claimed again on the retry"

    class Seen(Exception):
        pass

    def seen_before() -> None:
        raise Seen

    with pytest.raises(Seen):
        bus.handle(RestockProduct(sku="MUG-1", quantity=7), first=seen_before)
    assert stock_repository(store).get("MUG-1").state.on_hand == 10 + 1 + 5


def test_a_domain_error_is_not_retried(store):
    register_mug(store)
    attempts: list[RestockProduct] = []

    def counting(handler: Callable[[RestockProduct], None]) -> Callable[[RestockProduct], None]:
        def handle(command: RestockProduct) -> None:
            attempts.append(command)
            handler(command)

        return handle

    stock = stock_repository(store)
    bus = CommandBus(
        {RestockProduct: counting(partial(restock_product, stock=stock))},
        transaction=contextlib.nullcontext,
    )

    with pytest.raises(InvalidRestock):
        bus.handle(RestockProduct(sku="MUG-1", quantity=0))

    assert len(attempts) == 1


def test_a_command_without_a_handler_is_refused():
    bus = CommandBus({}, transaction=contextlib.nullcontext)

    with pytest.raises(UnknownCommand, match="StockUp"):
        bus.handle(StockUp(sku="MUG-1"))
