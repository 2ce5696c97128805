"""The projector: stops at a failing event and resumes after a fix, measures its lag,
announces what it changed, and rebuilds into a shadow copy that it swaps in."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory.commands import RegisterProduct, RestockProduct
from orders.commands import CancelOrder, ConfirmOrder, OrderItem, PlaceOrder
from orders.events import OrderConfirmed, ShippingAddress
from platform_core.eventsourcing.eventstore import LogPosition, RecordedEvent
from platform_core.messaging import dead_letters
from platform_core.models import DeadLetter, ProjectionCheckpoint, StoredEvent
from platform_core.operations.redelivery import redelivery_paths
from platform_core.projections.checkpoints import ProjectionFailed
from platform_core.projections.projector import ProjectionRunner
from platform_core.projections.read_models import ReadState
from platform_core.projections.rebuild import ProjectionRebuild
from platform_core.runtime import Runtime
from projections.models import OrderSummary, ProductStock
from projections.order_summary import OrderSummaryProjection
from projections.product_stock import ProductStockProjection
from tests.support import catch_up_fully, newest_stored

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESS = ShippingAddress(
    name="Ada", line1="1 Analytical St", city="London", postal_code="N1", country="GB"
)


class FragileOrderSummary(OrderSummaryProjection):
    """The order summary with a bug in its OrderConfirmed handler while `broken`."""

    broken = True

    def on_order_confirmed(
        self, event: OrderConfirmed, recorded: RecordedEvent, state: ReadState
    ) -> None:
        if self.broken:
            raise RuntimeError("bug in on_order_confirmed")
        super().on_order_confirmed(event, recorded, state)


def _register(rt: Runtime, sku: str = "MUG-1", stock: int = 50) -> None:
    """Register a product and project it, so that orders can be priced from it."""
    rt.bus.handle(RegisterProduct(sku=sku, name="Mug", price=Decimal("7.50"), initial_stock=stock))
    runner = _runner(rt, ProductStockProjection())
    deadline = time.monotonic() + 10
    while not ProductStock.objects.filter(sku=sku).exists():
        assert time.monotonic() < deadline, "the product never reached the read model"
        runner.catch_up()


def _place(rt: Runtime, *, customer_id: int = 1, quantity: int = 1) -> uuid.UUID:
    order_id = uuid.uuid4()
    rt.bus.handle(
        PlaceOrder(
            order_id=order_id,
            customer_id=customer_id,
            items=(OrderItem(sku="MUG-1", quantity=quantity),),
            shipping_address=ADDRESS,
            payment_token="tok_visa",
        )
    )
    return order_id


def _runner(rt: Runtime, *projections: Any, batch_size: int = 500) -> ProjectionRunner:
    return ProjectionRunner(
        projections or [OrderSummaryProjection(), ProductStockProjection()],
        store=rt.store,
        codec=rt.codec,
        batch_size=batch_size,
    )


def _settle(runner: ProjectionRunner) -> None:
    catch_up_fully(runner, stopped_ok=True)


def _order_rows() -> list[dict[str, Any]]:
    return list(OrderSummary.objects.order_by("id").values())


def _stock_rows() -> list[dict[str, Any]]:
    return list(ProductStock.objects.order_by("sku").values())


def test_a_failing_projection_stops_at_the_event_and_other_projections_go_on(platform_runtime):
    rt = platform_runtime
    _register(rt)
    first, second = _place(rt), _place(rt)
    rt.bus.handle(ConfirmOrder(order_id=first))
    rt.bus.handle(RestockProduct(sku="MUG-1", quantity=5))
    fragile = FragileOrderSummary()
    runner = _runner(rt, fragile, ProductStockProjection())

    _settle(runner)

    checkpoint = ProjectionCheckpoint.objects.get(name="order_summary")
    assert checkpoint.error == "RuntimeError: bug in on_order_confirmed"
    assert OrderSummary.objects.get(id=first).status == "pending"
    assert OrderSummary.objects.filter(id=second).exists(), "events before the failure commit"
    stored = StoredEvent.objects.get(event_type="orders.OrderConfirmed")
    confirmed = LogPosition(int(stored.transaction_id), stored.position)
    assert checkpoint.failed_position == str(confirmed)
    assert LogPosition(checkpoint.transaction_id, checkpoint.position) < confirmed
    assert ProductStock.objects.get(sku="MUG-1").on_hand == 55, "product stock went on"
    letter = DeadLetter.objects.get(source="projection:order_summary")
    assert letter.status == DeadLetter.Status.PENDING
    assert letter.headers["event_type"] == "orders.OrderConfirmed"
    assert "bug in on_order_confirmed" in letter.traceback


def test_a_stopped_projection_waits_then_resumes_once_its_handler_is_fixed(platform_runtime):
    rt = platform_runtime
    _register(rt)
    order_id = _place(rt)
    rt.bus.handle(ConfirmOrder(order_id=order_id))
    fragile = FragileOrderSummary()
    runner = _runner(rt, fragile)
    _settle(runner)
    assert runner.run_batch("order_summary") == 0, "not retried before its pause is over"

    fragile.broken = False
    ProjectionCheckpoint.objects.filter(name="order_summary").update(retry_at=None)
    _settle(runner)

    assert OrderSummary.objects.get(id=order_id).status == "confirmed"
    checkpoint = ProjectionCheckpoint.objects.get(name="order_summary")
    assert checkpoint.error == ""
    assert checkpoint.failed_position == ""
    letter = DeadLetter.objects.get(source="projection:order_summary")
    assert letter.status == DeadLetter.Status.RETRIED


def test_retrying_a_projection_dead_letter_resumes_it_at_once(platform_runtime):
    rt = platform_runtime
    _register(rt)
    order_id = _place(rt)
    rt.bus.handle(ConfirmOrder(order_id=order_id))
    fragile = FragileOrderSummary()
    runner = _runner(rt, fragile)
    _settle(runner)
    letter = DeadLetter.objects.get(source="projection:order_summary")
    retry = {letter.source: lambda _letter: runner.retry_now("order_summary")}

    assert not dead_letters.retry(letter, retry), "still broken: the retry fails again"
    fragile.broken = False
    assert dead_letters.retry(letter, retry)

    assert OrderSummary.objects.get(id=order_id).status == "confirmed"
    assert "projection:order_summary" in redelivery_paths(rt.consumer_groups, rt.projections)


def test_lag_counts_unread_events_and_the_age_of_the_oldest(platform_runtime):
    rt = platform_runtime
    _register(rt)
    _place(rt)
    runner = _runner(rt)
    assert runner.lag("order_summary").events == 2
    assert runner.lag("order_summary").seconds >= 0.0

    _settle(runner)

    lag = runner.lag("order_summary")
    assert (lag.events, lag.seconds) == (0, 0.0)
    assert ProjectionCheckpoint.objects.get(name="order_summary").last_event_at is not None


def test_rows_carry_the_log_position_of_the_last_event_that_changed_them(platform_runtime):
    rt = platform_runtime
    _register(rt)
    order_id = _place(rt)
    outcome = rt.bus.handle(ConfirmOrder(order_id=order_id))
    _settle(_runner(rt))

    row = OrderSummary.objects.get(id=order_id)
    assert LogPosition(row.last_transaction_id, row.last_position) == outcome.last_position


def test_each_committed_batch_announces_the_rows_it_changed(platform_runtime):
    rt = platform_runtime
    announced: list[list[dict[str, Any]]] = []
    _register(rt)
    first, second = _place(rt), _place(rt)
    rt.bus.handle(ConfirmOrder(order_id=first))
    runner = _runner(rt, OrderSummaryProjection(announce=lambda rows: announced.append(list(rows))))

    _settle(runner)
    rt.bus.handle(CancelOrder(order_id=second, reason="changed my mind"))
    _settle(runner)

    assert {row["id"]: row["status"] for batch in announced[:-1] for row in batch} == {
        first: "confirmed",
        second: "pending",
    }
    assert [(row["id"], row["status"]) for row in announced[-1]] == [(second, "cancelled")]


def _history(rt: Runtime, orders: int) -> list[uuid.UUID]:
    _register(rt, stock=1000)
    placed = [_place(rt, customer_id=n % 3 + 1, quantity=n % 4 + 1) for n in range(orders)]
    for index, order_id in enumerate(placed):
        if index % 3 == 0:
            rt.bus.handle(ConfirmOrder(order_id=order_id))
        elif index % 3 == 1:
            rt.bus.handle(CancelOrder(order_id=order_id, reason=f"reason {index}"))
    rt.bus.handle(RestockProduct(sku="MUG-1", quantity=7))
    return placed


def test_a_rebuild_equals_the_live_model_and_reads_answer_throughout(platform_runtime):
    rt = platform_runtime
    _history(rt, 30)
    announced: list[Sequence[Mapping[str, Any]]] = []
    runner = _runner(rt, OrderSummaryProjection(announce=announced.append))
    _settle(runner)
    live_orders = _order_rows()
    announced.clear()
    OrderSummary.objects.update(status="corrupted")  # what a rebuild is for
    seen_during: list[int] = []

    def progress(done: int) -> None:
        seen_during.append(OrderSummary.objects.filter(status="corrupted").count())

    report = ProjectionRebuild(runner, "order_summary", batch_size=7, progress=progress).run()

    assert _order_rows() == live_orders
    assert seen_during, "progress was reported"
    assert set(seen_during) == {30}, "the live table answered until the swap"
    assert announced == [], "a rebuild pushes nothing"
    assert report.events == StoredEvent.objects.count()
    assert runner.checkpoint("order_summary") == report.position


def test_rebuilding_product_stock_lands_on_the_same_numbers(platform_runtime):
    rt = platform_runtime
    _history(rt, 12)
    runner = _runner(rt)
    _settle(runner)
    live_stock = _stock_rows()
    ProductStock.objects.all().delete()

    ProjectionRebuild(runner, "product_stock", batch_size=5, max_cached_rows=0).run()

    assert _stock_rows() == live_stock


def test_a_rebuild_catches_up_with_events_written_while_it_ran(platform_runtime):
    rt = platform_runtime
    _history(rt, 5)
    runner = _runner(rt)
    late: list[uuid.UUID] = []

    def write_during_replay(done: int) -> None:
        if not late:
            late.append(_place(rt))
            # On PostgreSQL a commit becomes readable once older transactions on the
            # server end: wait for that, so that the rebuild is bound to see it.
            deadline = time.monotonic() + 10
            while rt.store.head() < newest_stored():
                assert time.monotonic() < deadline, "the late order never became readable"
                time.sleep(0.01)

    ProjectionRebuild(runner, "order_summary", batch_size=4, progress=write_during_replay).run()

    assert OrderSummary.objects.filter(id=late[0]).exists()
    assert OrderSummary.objects.count() == 6


def test_a_rebuild_that_fails_leaves_the_live_projection_untouched(platform_runtime):
    rt = platform_runtime
    _register(rt)
    order_id = _place(rt)
    rt.bus.handle(ConfirmOrder(order_id=order_id))
    _settle(_runner(rt))
    before, checkpoint = _order_rows(), _runner(rt).checkpoint("order_summary")

    with pytest.raises(ProjectionFailed):
        ProjectionRebuild(_runner(rt, FragileOrderSummary()), "order_summary").run()

    assert _order_rows() == before
    assert _runner(rt).checkpoint("order_summary") == checkpoint


def test_a_rebuild_clears_a_stopped_projection_once_the_fix_is_in(platform_runtime):
    rt = platform_runtime
    _register(rt)
    order_id = _place(rt)
    rt.bus.handle(ConfirmOrder(order_id=order_id))
    _settle(_runner(rt, FragileOrderSummary()))
    assert ProjectionCheckpoint.objects.get(name="order_summary").error

    ProjectionRebuild(_runner(rt), "order_summary").run()

    assert ProjectionCheckpoint.objects.get(name="order_summary").error == ""
    assert OrderSummary.objects.get(id=order_id).status == "confirmed"
    assert DeadLetter.objects.get().status == DeadLetter.Status.RETRIED


def test_polling_an_idle_log_touches_no_checkpoint(platform_runtime):
    rt = platform_runtime
    _register(rt)
    runner = _runner(rt)
    _settle(runner)

    with CaptureQueriesContext(connection) as idle:
        assert runner.catch_up() == 0
    _place(rt)
    with CaptureQueriesContext(connection) as busy:
        _settle(runner)

    assert not [q for q in idle.captured_queries if "projection_checkpoints" in q["sql"]]
    assert [q for q in busy.captured_queries if "projection_checkpoints" in q["sql"]]


class _RecordingStore:
    """The real store, noting the batch size of each log read."""

    def __init__(self, store: Any) -> None:
        self._store, self.limits, self.full = store, [], []

    def read_all(self, after: LogPosition, limit: int = 1000) -> list[RecordedEvent]:
        self.limits.append(limit)
        events = self._store.read_all(after, limit)
        if len(events) == limit:
            self.full.append(after)
        return events

    def head(self) -> LogPosition:
        return self._store.head()


def test_a_projector_far_behind_reads_in_growing_batches_then_small_ones(platform_runtime):
    rt = platform_runtime
    _register(rt, stock=1000)
    for _ in range(24):
        _place(rt)
    store = _RecordingStore(rt.store)
    runner = ProjectionRunner(
        [OrderSummaryProjection()], store=store, codec=rt.codec, batch_size=2, max_batch_size=8
    )

    _settle(runner)
    caught_up = len(store.limits)
    _place(rt)
    _settle(runner)

    assert store.limits[:4] == [2, 4, 8, 8], "full batches double the next, up to the cap"
    assert store.limits[caught_up] == 2, "once caught up, batches start small again"
    assert OrderSummary.objects.count() == 25


def test_projections_catching_up_together_read_each_batch_of_the_log_once(platform_runtime):
    rt = platform_runtime
    _register(rt, stock=1000)
    for _ in range(12):
        _place(rt)
    _settle(_runner(rt))
    orders, stock = _order_rows(), _stock_rows()
    ProjectionCheckpoint.objects.all().delete()
    OrderSummary.objects.all().delete()
    ProductStock.objects.all().delete()
    store = _RecordingStore(rt.store)
    runner = ProjectionRunner(
        [OrderSummaryProjection(), ProductStockProjection()],
        store=store,
        codec=rt.codec,
        batch_size=2,
        max_batch_size=4,
    )

    _settle(runner)

    assert len(store.full) > 2, "the log took several full batches"
    assert len(store.full) == len(set(store.full)), "each read once for both projections"
    assert (_order_rows(), _stock_rows()) == (orders, stock)
