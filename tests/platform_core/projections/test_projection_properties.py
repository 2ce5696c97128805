"""Properties of the projector over histories the domain can produce: whatever the
interleaving of orders and products, the transactions they were written in, the batch
sizes, a kill mid-batch or a rebuild, the read models equal a fold of the event store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.bootstrap import build_codec
from platform_core.eventsourcing.eventstore import RecordedEvent
from platform_core.models import ProjectionCheckpoint, StoredEvent
from platform_core.projections.projector import EventHandler, Projection, ProjectionRunner
from platform_core.projections.read_models import ReadState
from platform_core.projections.rebuild import ProjectionRebuild
from platform_core.storage.sql_store import event_store_for
from projections.order_summary import OrderSummaryProjection
from projections.product_stock import ProductStockProjection
from tests.platform_core.projections.projection_fold import (
    drain,
    fold_order_summaries,
    fold_product_stock,
    forget_everything,
    order_rows,
    stock_rows,
    up_to,
    whole_log,
)
from tests.platform_core.projections.projection_schedules import (
    BATCH_SIZES,
    LogWriter,
    Schedule,
    backlog,
    schedules,
)

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[3]
CODEC = build_codec()
# Every example writes and projects through the database: no deadline, and the
# transactional database fixture serves all of a test's examples (each one starts by
# emptying the tables).
PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class ProjectorKilled(BaseException):
    """The process died mid-batch. Not an Exception, so the projector's failure handling
    never sees it: only its transaction ends, unfinished, as with SIGKILL."""


class _DiesAtEvent(Projection):
    """A real projection that dies when about to apply its `kill_at`-th event."""

    def __init__(self, kill_at: int) -> None:
        super().__init__()
        self._left = kill_at

    def handlers(self) -> dict[type[Any], EventHandler]:
        return {kind: self._dying(handler) for kind, handler in super().handlers().items()}

    def _dying(self, handler: EventHandler) -> EventHandler:
        def handle(event: Any, recorded: RecordedEvent, state: ReadState) -> None:
            self._left -= 1
            if self._left == 0:
                raise ProjectorKilled(f"killed at {recorded.log_position}")
            handler(event, recorded, state)

        return handle


class DyingOrderSummary(_DiesAtEvent, OrderSummaryProjection):
    pass


class DyingProductStock(_DiesAtEvent, ProductStockProjection):
    pass


def _runner(batch_size: int, *projections: Projection) -> ProjectionRunner:
    return ProjectionRunner(
        projections or (OrderSummaryProjection(), ProductStockProjection()),
        store=event_store_for(),
        codec=CODEC,
        batch_size=batch_size,
    )


def _write(schedule: Schedule) -> None:
    """Append the schedule's transactions, catching up where it says so."""
    writer = LogWriter(event_store_for(), CODEC)
    for steps, batch_size in zip(schedule.transactions, schedule.catch_ups, strict=True):
        writer.write(steps)
        if batch_size is not None:
            _runner(batch_size).catch_up()


def _assert_read_models_fold(runner: ProjectionRunner) -> None:
    log = whole_log(runner, CODEC)
    assert len(log) == StoredEvent.objects.count(), "the log shows every stored event"
    assert order_rows() == fold_order_summaries(log)
    assert stock_rows() == fold_product_stock(log)


@PROPERTY
@given(schedule=schedules(), batch_size=BATCH_SIZES)
def test_the_read_models_equal_a_fold_of_the_log_whatever_the_interleaving_and_batches(
    schedule: Schedule, batch_size: int
) -> None:
    forget_everything()
    _write(schedule)

    runner = _runner(batch_size)
    drain(runner)

    log = whole_log(runner, CODEC)
    assert [event for _, event in log] == [event for _, _, event in schedule.steps]
    _assert_read_models_fold(runner)


@PROPERTY
@given(schedule=schedules(catch_ups=False), batch_size=BATCH_SIZES, data=st.data())
def test_a_projector_killed_mid_batch_neither_skips_nor_applies_an_event_twice(
    schedule: Schedule, batch_size: int, data: st.DataObject
) -> None:
    forget_everything()
    _write(schedule)
    dying = data.draw(st.sampled_from([DyingOrderSummary, DyingProductStock]))
    handled = set(dying(0).handlers())
    victims = sum(type(event) in handled for _, _, event in schedule.steps)
    killed = dying(data.draw(st.integers(1, victims), label="killed at its nth event"))
    survivor = ProductStockProjection() if dying is DyingOrderSummary else OrderSummaryProjection()
    runner = _runner(batch_size, killed, survivor)

    with pytest.raises(ProjectorKilled):
        drain(runner)

    log = whole_log(runner, CODEC)
    assert order_rows() == fold_order_summaries(up_to(log, runner.checkpoint("order_summary")))
    assert stock_rows() == fold_product_stock(up_to(log, runner.checkpoint("product_stock")))
    restarted = _runner(data.draw(BATCH_SIZES, label="batch size after the restart"))
    drain(restarted)
    _assert_read_models_fold(restarted)


@PROPERTY
@given(
    schedule=schedules(),
    batch_size=BATCH_SIZES,
    rebuild_batch_size=BATCH_SIZES,
    flush_every=st.integers(1, 30),
    max_cached_rows=st.sampled_from([0, 200_000]),
)
def test_a_rebuild_leaves_the_read_models_exactly_as_the_live_projector_had_them(
    schedule: Schedule,
    batch_size: int,
    rebuild_batch_size: int,
    flush_every: int,
    max_cached_rows: int,
) -> None:
    forget_everything()
    _write(schedule)
    runner = _runner(batch_size)
    drain(runner)
    live = (order_rows(), stock_rows(), [runner.checkpoint(name) for name in runner.names])

    for name in runner.names:
        ProjectionRebuild(
            runner,
            name,
            batch_size=rebuild_batch_size,
            flush_every=flush_every,
            max_cached_rows=max_cached_rows,
        ).run()

    assert (order_rows(), stock_rows(), [runner.checkpoint(name) for name in runner.names]) == live
    _assert_read_models_fold(runner)


def _write_backlog(orders: int, movements: int) -> int:
    """Write a large history in big transactions; the position of its last event."""
    writer = LogWriter(event_store_for(), CODEC)
    lanes = backlog(orders, movements)
    for start in range(0, len(lanes), 20):
        writer.write([step for lane in lanes[start : start + 20] for step in lane])
    newest = StoredEvent.objects.order_by("-transaction_id", "-position").first()
    assert newest is not None
    return newest.position


def _projector_env() -> dict[str, str]:
    """The environment of a projector process on the test database."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    url = f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "CONN_MAX_AGE": "0"}


def _checkpoints() -> dict[str, int]:
    return dict(ProjectionCheckpoint.objects.values_list("name", "position"))


def _wait_for(check: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.005)


def _midway(projector: subprocess.Popen[bytes], log: Path, newest: int) -> bool:
    """Some checkpoint has moved and some has not reached the newest event."""
    assert projector.poll() is None, f"the projector exited\n{log.read_text()}"
    positions = _checkpoints().values()
    return any(positions) and any(position != newest for position in positions)


def _kill_midway(command: list[str], log: Path, newest: int) -> None:
    """Start a projector process; SIGKILL it once it has committed a batch, not the last."""
    with log.open("wb") as output:
        projector = subprocess.Popen(
            command, cwd=ROOT, env=_projector_env(), stdout=output, stderr=output
        )
        try:
            _wait_for(
                lambda: _midway(projector, log, newest),
                "the projector to be midway through the backlog",
            )
        finally:
            projector.kill()
            projector.wait(timeout=30)


def _caught_up_once(command: list[str], newest: int) -> bool:
    once = subprocess.run(
        [*command, "--once"], cwd=ROOT, env=_projector_env(), capture_output=True, timeout=120
    )
    assert once.returncode == 0, once.stderr.decode()
    positions = _checkpoints()
    return all(positions.get(name) == newest for name in ("order_summary", "product_stock"))


@pytest.mark.postgres
def test_a_projector_process_killed_while_working_resumes_where_its_last_batch_committed(
    tmp_path: Path,
) -> None:
    newest = _write_backlog(orders=600, movements=3000)
    command = [sys.executable, str(ROOT / "manage.py"), "run_projections"]

    _kill_midway(command, tmp_path / "projector.log", newest)
    killed_at = _checkpoints()
    _wait_for(lambda: _caught_up_once(command, newest), "run_projections --once to catch up")

    assert any(position != newest for position in killed_at.values()), "killed with work left"
    _assert_read_models_fold(_runner(500))
