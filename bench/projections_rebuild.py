"""The rebuild part of projections.py: a realistic log written through the real event store
(order_log.py), then a raw psycopg read of it beside ProjectionRebuild of each projection
and the live projector catching up from checkpoint 0 (projections_catch_up.py), in
interleaved rounds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
from _common import interleaved, log, machine_cpu_seconds, median, paired_ratio, wait_for_log
from order_log import PRODUCTS, LogWriter
from projections_catch_up import StaffBoard, catch_up_from_zero, deployed_channel_layer
from projections_sizes import Sizes

PROJECTIONS = ("order_summary", "product_stock")
READ_BATCH = 5000  # ProjectionRebuild's default batch_size

# The shape of PostgresEventStore.read_all: every column, JSON as text, visible rows only.
RAW_READ = """
SELECT position, transaction_id::text::bigint, stream_id, stream_type, version, event_type,
       schema_version, data::text, metadata::text, recorded_at
FROM event_store
WHERE (transaction_id, position) > (%s::text::xid8, %s)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY event_store.transaction_id, event_store.position LIMIT %s"""


def raw_read(conn: psycopg.Connection[Any]) -> int:
    tx, position, n = 0, 0, 0
    while rows := conn.execute(
        RAW_READ, (str(tx), position, READ_BATCH), prepare=True, binary=True
    ).fetchall():
        n += len(rows)
        position, tx = rows[-1][0], rows[-1][1]
    return n


def rebuild(name: str) -> tuple[int, float]:
    from platform_core.projections.rebuild import ProjectionRebuild
    from platform_core.runtime import runtime

    report = ProjectionRebuild(runtime().projections, name).run()
    return report.events, report.seconds


def write_log(url: str, sizes: Sizes, flat: dict[str, Any]) -> int:
    from platform_core.storage.sql_store import event_store_for

    log(f"writing a log of about {sizes.events:,} events ...")
    writer = LogWriter()
    start = time.perf_counter()
    writer.write(sizes.events)
    events = writer.events
    flat["log_events"], flat["log_orders"], flat["log_products"] = events, writer.orders, PRODUCTS
    flat["log_write_events_per_s"] = events / (time.perf_counter() - start)
    log(f"  {events:,} events, {writer.orders:,} orders: {flat['log_write_events_per_s']:,.0f}/s")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE event_store")
    wait_for_log(url, event_store_for())
    return events


def run_rebuilds(url: str, sizes: Sizes, flat: dict[str, Any]) -> None:
    """Raw read, both rebuilds and the live projector from 0 (nobody listening, then a
    staff board listening) in interleaved rounds."""
    events = write_log(url, sizes, flat)
    raw = psycopg.connect(url, autocommit=True)

    def expect(read: int, what: str, factor: int = 1) -> None:
        if read != events * factor:
            raise RuntimeError(f"{what} read {read} events, expected {events * factor}")

    def raw_rate() -> float:
        start = time.perf_counter()
        n = raw_read(raw)
        expect(n, "raw")
        return n / (time.perf_counter() - start)

    def rebuild_rate(name: str) -> Callable[[], float]:
        def run() -> float:
            n, seconds = rebuild(name)
            expect(n, f"rebuild {name}")
            return n / seconds

        return run

    board = StaffBoard()

    def catch_up_rate() -> float:
        n, seconds = catch_up_from_zero()
        expect(n, "catch-up", factor=len(PROJECTIONS))
        return events / seconds

    def catch_up_listened_rate() -> float:
        with board.listening():
            rate = catch_up_rate()
        if board.received < flat["log_orders"]:
            raise RuntimeError(f"the staff board got {board.received} frames")
        flat["catch_up_listened_frames"] = board.received
        return rate

    contenders = {
        "raw_read": raw_rate,
        **{f"rebuild_{name}": rebuild_rate(name) for name in PROJECTIONS},
        "catch_up": catch_up_rate,
        "catch_up_listened": catch_up_listened_rate,
    }
    log(f"rebuild and catch-up rounds ({sizes.rounds}, after a warm-up round) ...")
    busy0 = machine_cpu_seconds()
    try:
        with deployed_channel_layer():
            results = interleaved(contenders, sizes.rounds)
    finally:
        raw.close()
    busy1 = machine_cpu_seconds()
    flat["rebuild_machine_busy_pct"] = 100 * (busy1[0] - busy0[0]) / (busy1[1] - busy0[1])
    for name, values in results.items():
        flat[f"{name}_events_per_s"] = median(values)
        flat[f"{name}_events_per_s_min"], flat[f"{name}_events_per_s_max"] = (
            min(values),
            max(values),
        )
        if name != "raw_read":
            flat[f"{name}_raw_ratio"] = paired_ratio(values, results["raw_read"])
