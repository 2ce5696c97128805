"""The workloads of eventstore.py and their sizes: appends, concurrent writer processes,
the global log read and aggregate loads, each run over its contenders in interleaved
rounds into per-round values."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from _common import interleaved, latency_ms, log, throughput, wait_for_log
from eventstore_contenders import (
    RAW_COLUMNS,
    RAW_READ_LOG,
    RAW_READ_STREAM,
    LibraryAppend,
    LibraryApplicationSave,
    LibraryBench,
    LibStockItem,
    OursAppend,
    OursRepositorySave,
    Payloads,
    PlainSqlAppend,
    RawAppend,
    library_env,
)
from psycopg import sql


@dataclass(frozen=True)
class Sizes:
    rounds: int
    writer_rounds: int
    seconds: float  # per contender per round, single-process append workloads
    writer_seconds: float  # per contender per round, concurrent writer workloads
    load_seconds: float  # per contender per round, aggregate loads
    log_events: int
    log_batch: int = 1000
    aggregate_events: int = 1000


QUICK = Sizes(
    rounds=3,
    writer_rounds=3,
    seconds=0.25,
    writer_seconds=0.5,
    load_seconds=0.15,
    log_events=10_000,
)
# Many short rounds: each round's contenders run back to back, so a ratio taken within a
# round sees the same machine, and the median of fifteen shrugs off the noisy ones.
DEFAULT = Sizes(
    rounds=15,
    writer_rounds=7,
    seconds=0.3,
    writer_seconds=1.5,
    load_seconds=0.3,
    log_events=100_000,
)


# --------------------------------------------------------------------------- writers


def _writer_process(pipe: Any, index: int, url: str) -> None:
    """One concurrent writer: on ("prepare", impl) it connects and warms up, then on
    ("go", start_at, seconds) appends one event per transaction to its own stream from
    start_at (wall clock) until start_at + seconds and reports (count, end time)."""
    payloads = Payloads(64)
    while True:
        message = pipe.recv()
        if message is None:
            return
        _, impl = message
        if impl == "ours":
            writer: Any = OursAppend(payloads, 1, same_stream=True)
        elif impl == "raw":
            writer = RawAppend(url, payloads, 1, same_stream=True)
        else:
            writer = LibraryAppend(
                LibraryBench(env=library_env(url, CREATE_TABLE="n")), payloads, 1, True
            )
        for _ in range(20):
            writer.op()
        pipe.send("ready")
        _, start_at, seconds = pipe.recv()
        time.sleep(max(0.0, start_at - time.time()))
        deadline, count = start_at + seconds, 0
        while time.time() < deadline:
            count += writer.op()
        end = time.time()
        writer.close()
        pipe.send((count, end))


class WriterPool:
    def __init__(self, url: str, size: int) -> None:
        context = multiprocessing.get_context("fork")
        self.pipes = []
        self.processes = []
        for index in range(size):
            parent, child = context.Pipe()
            process = context.Process(target=_writer_process, args=(child, index, url))
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def run(self, impl: str, writers: int, seconds: float) -> float:
        pipes = self.pipes[:writers]
        for pipe in pipes:
            pipe.send(("prepare", impl))
        for pipe in pipes:
            if pipe.recv() != "ready":
                raise RuntimeError("writer failed to start")
        start_at = time.time() + 0.3
        for pipe in pipes:
            pipe.send(("go", start_at, seconds))
        reports = [pipe.recv() for pipe in pipes]
        return sum(count for count, _ in reports) / (max(end for _, end in reports) - start_at)

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(None)
        for process in self.processes:
            process.join(timeout=30)


# --------------------------------------------------------------------------- workloads

Results = dict[str, dict[str, list[float]]]


def run_appends(url: str, sizes: Sizes, app: Any, results: Results) -> None:
    payloads = Payloads()

    def rate(op: Callable[[], int]) -> Callable[[], float]:
        return lambda: throughput(op, sizes.seconds)

    for name, per_tx, same in (
        ("append_1_new_stream", 1, False),
        ("append_1_same_stream", 1, True),
        ("append_10_per_tx", 10, False),
        ("append_100_per_tx", 100, False),
    ):
        log(f"{name} ...")
        raw = RawAppend(url, payloads, per_tx, same)
        closers = [raw.close]
        contenders = {
            "ours": rate(OursAppend(payloads, per_tx, same).op),
            "library": rate(LibraryAppend(app, payloads, per_tx, same).op),
            "raw": rate(raw.op),
        }
        if name == "append_1_new_stream":
            for guarded in (False, True):
                plain = PlainSqlAppend(url, payloads, guarded)
                contenders["sql_guarded" if guarded else "sql_insert"] = rate(plain.op)
                closers.append(plain.close)
        if name == "append_100_per_tx":
            raw_values = RawAppend(url, payloads, per_tx, same, values=True)
            contenders["raw_values"] = rate(raw_values.op)
            closers.append(raw_values.close)
        if name == "append_1_same_stream":
            contenders["ours_atomic"] = rate(OursAppend(payloads, 1, True, atomic=True).op)
            contenders["ours_repository"] = rate(OursRepositorySave().op)
            contenders["library_application"] = rate(LibraryApplicationSave(app, LibStockItem).op)
        results[name] = interleaved(contenders, sizes.rounds)
        for close in closers:
            close()


def run_writers(url: str, sizes: Sizes, results: Results) -> None:
    counts = (4, 16)
    log(f"starting {max(counts)} writer processes ...")
    pool = WriterPool(url, max(counts))
    try:
        for writers in counts:
            log(f"writers_{writers} ...")
            results[f"writers_{writers}"] = interleaved(
                {
                    impl: (
                        lambda impl=impl, writers=writers: pool.run(
                            impl, writers, sizes.writer_seconds
                        )
                    )
                    for impl in ("ours", "library", "raw")
                },
                sizes.writer_rounds,
                warmup=False,
            )
    finally:
        pool.close()


def populate_log(url: str, sizes: Sizes, app: Any) -> None:
    """`sizes.log_events` events in 100-event transactions through our store, then the
    very same rows copied into raw_events and the library's table, in log order."""
    from platform_core.storage.sql_store import PostgresEventStore

    store, payloads = PostgresEventStore(), Payloads()
    for n in range(sizes.log_events // 100):
        store.append(f"stock-log-{n}", "stock", 0, payloads.new_events[payloads.take(100)])
    table = sql.Identifier(app.recorder.events_table_name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO raw_events ({RAW_COLUMNS}, recorded_at)"
            f" SELECT {RAW_COLUMNS}, recorded_at FROM event_store"
            " ORDER BY transaction_id, position"
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (originator_id, originator_version, topic, state)"
                " SELECT md5(stream_id)::uuid, version, event_type, convert_to(data::text, 'UTF8')"
                " FROM event_store ORDER BY transaction_id, position"
            ).format(table)
        )
        conn.execute("VACUUM ANALYZE")


def run_log_read(url: str, sizes: Sizes, app: Any, results: Results) -> None:
    from platform_core.eventsourcing.eventstore import LOG_START
    from platform_core.storage.sql_store import _PG_READ_ALL, PostgresEventStore

    log(f"populating the log with {sizes.log_events:,} events ...")
    populate_log(url, sizes, app)
    store, recorder, batch = PostgresEventStore(), app.recorder, sizes.log_batch
    raw = psycopg.connect(url, autocommit=True)
    wait_for_log(url, store)

    def ours() -> int:
        after, n = LOG_START, 0
        while events := store.read_all(after, batch):
            n += len(events)
            after = events[-1].log_position
        return n

    def raw_read() -> int:
        after, n = 0, 0
        while rows := raw.execute(RAW_READ_LOG, (after, batch)).fetchall():
            n += len(rows)
            after = rows[-1][0]
        return n

    def sql_fetch() -> int:  # our query on a plain connection, rows left as tuples
        tx, position, n = 0, 0, 0
        while rows := raw.execute(
            _PG_READ_ALL, (str(tx), position, batch), prepare=True, binary=True
        ).fetchall():
            n += len(rows)
            position, tx = rows[-1][0], rows[-1][1]
        return n

    def library() -> int:
        start, n = 1, 0
        while notifications := recorder.select_notifications(start, batch):
            n += len(notifications)
            start = notifications[-1].id + 1
        return n

    def rate(read: Callable[[], int]) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            n = read()
            elapsed = time.perf_counter() - start
            if n != sizes.log_events:
                raise RuntimeError(f"read {n} events, expected {sizes.log_events}")
            return n / elapsed

        return run

    log("read_log ...")
    results["read_log"] = interleaved(
        {
            "ours": rate(ours),
            "library": rate(library),
            "raw": rate(raw_read),
            "sql_fetch": rate(sql_fetch),
        },
        sizes.rounds,
    )
    raw.close()


def run_loads(url: str, sizes: Sizes, app: Any, results: Results) -> None:
    from django.conf import settings

    from config.bootstrap import build_codec
    from inventory.domain.stock import StockItem
    from platform_core.eventsourcing.repository import Repository
    from platform_core.storage.django_snapshots import DjangoSnapshotStore
    from platform_core.storage.sql_store import PostgresEventStore

    log(f"writing {sizes.aggregate_events:,}-event aggregates ...")
    n_events = sizes.aggregate_events
    store, codec = PostgresEventStore(), build_codec()
    with_snapshots = Repository(
        StockItem,
        store=store,
        codec=codec,
        snapshots=DjangoSnapshotStore(),
        snapshot_every=settings.SNAPSHOT_EVERY,
    )
    replay_only = Repository(StockItem, store=store, codec=codec)
    sku = "LOAD-1000"
    item = StockItem.register(sku=sku, name="Load", price=Decimal("9.99"), initial_stock=0)
    for _ in range(n_events - 1):
        item.restock(1)
        if item.pending_count == 100:
            with_snapshots.save(item)
    with_snapshots.save(item)
    stream_id = StockItem.stream_id_for(sku)

    lib_item = LibStockItem(sku, "Load", Decimal("9.99"), 0)
    for _ in range(n_events - 1):
        lib_item.restock(1)
        if len(lib_item.pending_events) == 100:
            app.save(lib_item)
    app.save(lib_item)

    raw = psycopg.connect(url, autocommit=True)
    raw.execute(
        f"INSERT INTO raw_events ({RAW_COLUMNS}, recorded_at)"
        f" SELECT {RAW_COLUMNS}, recorded_at FROM event_store WHERE stream_id = %s"
        " ORDER BY version",
        (stream_id,),
    )
    raw.execute("VACUUM ANALYZE")

    loaded = [replay_only.get(sku), with_snapshots.get(sku), app.repository.get(lib_item.id)]
    if [item.version for item in loaded] != [n_events] * 3 or [
        loaded[0].state.on_hand,
        loaded[1].state.on_hand,
        loaded[2].on_hand,
    ] != [n_events - 1] * 3:
        raise RuntimeError("an aggregate did not load to its last version")
    if len(raw.execute(RAW_READ_STREAM, (stream_id,)).fetchall()) != n_events:
        raise RuntimeError("the raw stream is incomplete")

    def timed(op: Callable[[], object]) -> Callable[[], float]:
        return lambda: latency_ms(op, sizes.load_seconds)

    log("load_1000 ...")
    results["load_1000"] = interleaved(
        {
            "ours": timed(lambda: replay_only.get(sku)),
            "ours_snapshot": timed(lambda: with_snapshots.get(sku)),
            "ours_read_stream": timed(lambda: store.read_stream(stream_id)),
            "library": timed(lambda: app.repository.get(lib_item.id)),
            "raw": timed(lambda: raw.execute(RAW_READ_STREAM, (stream_id,)).fetchall()),
        },
        sizes.rounds,
    )
    raw.close()
