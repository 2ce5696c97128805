"""Event store benchmark on PostgreSQL: ours vs the `eventsourcing` library vs raw psycopg.

    .venv/bin/python bench/eventstore.py            # default size, a few minutes
    .venv/bin/python bench/eventstore.py --quick    # smoke size for CI, under a minute

It (re)creates the database named by --database-url (default $BENCH_DATABASE_URL, else
postgres://postgres@127.0.0.1:5432/bench_eventstore; the name must start with "bench_"),
migrates it, and puts three equivalent stores side by side in it:

  ours     platform_core.storage.sql_store.PostgresEventStore on Django's connection (and
           platform_core.eventsourcing.repository.Repository for aggregate loads);
  library  eventsourcing 9.5 with its PostgreSQL persistence, default settings (its
           application recorder for appends and log reads, its Application repository for
           aggregate loads);
  raw      psycopg with no framework: an autocommit connection, one INSERT (committed by
           itself) per round trip into `raw_events`, a plain table with the same columns as
           ours minus the transaction id (a batch goes in as INSERT ... SELECT FROM
           unnest() of binary arrays, the fastest single statement), and plain SELECTs.

Indented rows of the table are extra contenders that explain a number (the same SQL on
a plain connection, a bare INSERT into our table, ...). Every workload runs all
contenders once per round, rotating who goes first, for several rounds; the table shows
medians, and a ratio is the median of the per-round ratios. It
prints the table and writes bench/results/eventstore.json (metric name -> number).
See docs/benchmarks.md for what bounds each number.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(Path(__file__).resolve().parent), str(ROOT / "platform"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import psycopg  # noqa: E402
from _common import (  # noqa: E402
    format_number,
    interleaved,
    latency_ms,
    machine,
    median,
    now_iso,
    paired_ratio,
    recreate_database,
    render_table,
    setup_django,
    throughput,
    wait_for_log,
    write_results,
)
from eventsourcing.application import Application  # noqa: E402
from eventsourcing.domain import Aggregate as LibraryAggregate  # noqa: E402
from eventsourcing.domain import event  # noqa: E402
from psycopg import sql  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_eventstore"
LIBRARY_TOPIC = "inventory.events:StockReplenished"


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


# --------------------------------------------------------------------------- setup


def library_env(url: str, **extra: str) -> dict[str, str]:
    parts = urlparse(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        **extra,
    }


RAW_TABLE = """
CREATE TABLE raw_events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id text NOT NULL,
    stream_type text NOT NULL,
    version integer NOT NULL,
    event_type text NOT NULL,
    schema_version smallint NOT NULL DEFAULT 1,
    data jsonb NOT NULL,
    metadata jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT raw_events_stream_version_key UNIQUE (stream_id, version)
)"""
RAW_COLUMNS = "stream_id, stream_type, version, event_type, schema_version, data, metadata"
RAW_ROW = "(%s, %s, %s, %s, %s, %s, %s)"
RAW_SELECT = (
    "SELECT position, stream_id, stream_type, version, event_type, schema_version,"
    " data::text, metadata::text, recorded_at FROM raw_events"
)
RAW_READ_STREAM = f"{RAW_SELECT} WHERE stream_id = %s ORDER BY version"
RAW_READ_LOG = f"{RAW_SELECT} WHERE position > %s ORDER BY position LIMIT %s"


class LibraryBench(Application):
    """The library's application; its events table is librarybench_events."""


class LibStockItem(LibraryAggregate):
    """The library's equivalent of our StockItem."""

    @event("Registered")
    def __init__(self, sku: str, name: str, price: Decimal, on_hand: int) -> None:
        self.sku, self.name, self.price, self.on_hand = sku, name, price, on_hand

    @event("Replenished")
    def restock(self, quantity: int) -> None:
        self.on_hand += quantity


class Payloads:
    """Pre-encoded events (StockReplenished JSON plus metadata), the same bytes for all
    three contenders, so the timed loops measure storing, not building, events."""

    def __init__(self, count: int = 1000) -> None:
        from config.bootstrap import build_codec
        from inventory.events import StockReplenished
        from platform_core.eventsourcing.eventstore import EventMetadata, NewEvent, encode_metadata

        codec = build_codec()
        self.count = count
        self.new_events: list[Any] = []
        self.raw: list[tuple[str, int, str, str]] = []
        self.states: list[bytes] = []
        for i in range(count):
            event_type, schema_version, data = codec.encode(
                StockReplenished(
                    sku=f"SKU-{i:05d}",
                    quantity=5,
                    on_hand=100 + i,
                    replenished_at=datetime.now(UTC),
                )
            )
            metadata = EventMetadata(
                event_id=uuid.uuid4(), correlation_id=str(uuid.uuid4()), actor="bench"
            )
            self.new_events.append(
                NewEvent(
                    event_type=event_type,
                    schema_version=schema_version,
                    data=data,
                    metadata=metadata,
                )
            )
            self.raw.append(
                (event_type, schema_version, data.decode(), encode_metadata(metadata).decode())
            )
            self.states.append(data)
        self._next = 0

    def take(self, n: int) -> slice:
        start = self._next if self._next + n <= self.count else 0
        self._next = start + n
        return slice(start, start + n)


_stream_counter = iter(range(1, 1 << 62))


def unique_stream() -> str:
    return f"{os.getpid()}-{next(_stream_counter)}"


# --------------------------------------------------------------------------- appenders
# Each `op()` appends one transaction's worth of events and returns how many.


class OursAppend:
    def __init__(self, payloads: Payloads, per_tx: int, same_stream: bool, atomic: bool = False):
        from platform_core.storage.sql_store import PostgresEventStore

        self.store = PostgresEventStore()
        self.payloads, self.per_tx, self.same_stream, self.atomic = (
            payloads,
            per_tx,
            same_stream,
            atomic,
        )
        self.stream, self.version = f"stock-bench-{unique_stream()}", 0

    def op(self) -> int:
        events = self.payloads.new_events[self.payloads.take(self.per_tx)]
        if not self.same_stream:
            self.stream, self.version = f"stock-bench-{unique_stream()}", 0
        if self.atomic:
            from django.db import transaction

            with transaction.atomic():
                self.store.append(self.stream, "stock", self.version, events)
        else:
            self.store.append(self.stream, "stock", self.version, events)
        self.version += self.per_tx
        return self.per_tx

    def close(self) -> None:
        from django.db import connections

        connections.close_all()


class RawAppend:
    """One INSERT statement per transaction, committed by itself (autocommit).

    One event: INSERT ... VALUES with psycopg's defaults. A batch: by default INSERT ...
    SELECT FROM unnest() of binary-format arrays, the fastest single statement we found;
    `values=True` gives the textbook multi-row VALUES (seven parameters a row), which
    psycopg adapts one by one and which is about half as fast at 100 rows.
    """

    UNNEST = (
        f"INSERT INTO raw_events ({RAW_COLUMNS})"
        " SELECT %b, %b, u.version, u.event_type, u.schema_version, u.data::jsonb,"
        " u.metadata::jsonb"
        " FROM unnest(%b::int[], %b::text[], %b::int[], %b::text[], %b::text[])"
        " AS u(version, event_type, schema_version, data, metadata)"
    )

    def __init__(
        self, url: str, payloads: Payloads, per_tx: int, same_stream: bool, values: bool = False
    ):
        self.conn = psycopg.connect(url, autocommit=True)
        self.payloads, self.per_tx, self.same_stream = payloads, per_tx, same_stream
        self.unnest = per_tx > 1 and not values
        self.sql = (
            self.UNNEST
            if self.unnest
            else (f"INSERT INTO raw_events ({RAW_COLUMNS}) VALUES " + ", ".join([RAW_ROW] * per_tx))
        )
        self.stream, self.version = f"stock-bench-{unique_stream()}", 0

    def op(self) -> int:
        if not self.same_stream:
            self.stream, self.version = f"stock-bench-{unique_stream()}", 0
        stream, version, rows = (
            self.stream,
            self.version,
            self.payloads.raw[self.payloads.take(self.per_tx)],
        )
        params: list[Any]
        if self.unnest:
            params = [
                stream,
                "stock",
                list(range(version + 1, version + 1 + self.per_tx)),
                [row[0] for row in rows],
                [row[1] for row in rows],
                [row[2] for row in rows],
                [row[3] for row in rows],
            ]
        else:
            params = []
            for n, (event_type, schema_version, data, metadata) in enumerate(rows, start=1):
                params += (stream, "stock", version + n, event_type, schema_version, data, metadata)
        self.conn.execute(self.sql, params)
        self.version += self.per_tx
        return self.per_tx

    def close(self) -> None:
        self.conn.close()


class LibraryAppend:
    def __init__(self, app: Any, payloads: Payloads, per_tx: int, same_stream: bool):
        from eventsourcing.persistence import StoredEvent

        self.stored_event = StoredEvent
        self.app, self.recorder = app, app.recorder
        self.payloads, self.per_tx, self.same_stream = payloads, per_tx, same_stream
        self.originator, self.version = uuid.uuid4(), 0

    def op(self) -> int:
        if not self.same_stream:
            self.originator, self.version = uuid.uuid4(), 0
        originator, version, stored_event = self.originator, self.version, self.stored_event
        self.recorder.insert_events(
            [
                stored_event(
                    originator_id=originator,
                    originator_version=version + n,
                    topic=LIBRARY_TOPIC,
                    state=state,
                )
                for n, state in enumerate(
                    self.payloads.states[self.payloads.take(self.per_tx)], start=1
                )
            ]
        )
        self.version += self.per_tx
        return self.per_tx

    def close(self) -> None:
        self.app.close()


class PlainSqlAppend:
    """Breaks the cost of one appended event down: on a plain psycopg connection, either a
    bare INSERT into our event_store table (its xid8 column and log index, no guard), or
    our store's exact single-event statement (guard and RETURNING too)."""

    INSERT = f"INSERT INTO event_store ({RAW_COLUMNS}) VALUES {RAW_ROW}"

    def __init__(self, url: str, payloads: Payloads, guarded: bool) -> None:
        from platform_core.storage.sql_store import _PG_APPEND_ONE

        self.conn = psycopg.connect(url, autocommit=True)
        self.payloads, self.guarded, self.guarded_sql = payloads, guarded, _PG_APPEND_ONE

    def op(self) -> int:
        stream = f"stock-bench-{unique_stream()}"
        event_type, schema_version, data, metadata = self.payloads.raw[self.payloads.take(1)][0]
        if self.guarded:
            self.conn.execute(
                self.guarded_sql,
                (stream, "stock", 0, event_type, schema_version, data, metadata, stream, 0),
                prepare=True,
            ).fetchall()
        else:
            self.conn.execute(
                self.INSERT, (stream, "stock", 1, event_type, schema_version, data, metadata)
            )
        return 1

    def close(self) -> None:
        self.conn.close()


class OursRepositorySave:
    """Domain level: StockItem.restock then Repository.save in transaction.atomic(), as the
    command bus runs a command (snapshots every SNAPSHOT_EVERY events included)."""

    def __init__(self) -> None:
        from django.conf import settings
        from django.db import transaction

        from config.bootstrap import build_codec
        from inventory.domain.stock import StockItem
        from platform_core.eventsourcing.repository import Repository
        from platform_core.storage.django_snapshots import DjangoSnapshotStore
        from platform_core.storage.sql_store import PostgresEventStore

        self.atomic = transaction.atomic
        self.repo = Repository(
            StockItem,
            store=PostgresEventStore(),
            codec=build_codec(),
            snapshots=DjangoSnapshotStore(),
            snapshot_every=settings.SNAPSHOT_EVERY,
        )
        self.item = StockItem.register(
            sku=f"DOMAIN-{os.getpid()}", name="Domain", price=Decimal("1.00"), initial_stock=0
        )
        with self.atomic():
            self.repo.save(self.item)

    def op(self) -> int:
        self.item.restock(1)
        with self.atomic():
            self.repo.save(self.item)
        return 1


class LibraryApplicationSave:
    """Domain level: an aggregate command method then Application.save."""

    def __init__(self, app: Any, aggregate_type: type) -> None:
        self.app = app
        self.item = aggregate_type("DOMAIN", "Domain", Decimal("1.00"), 0)
        app.save(self.item)

    def op(self) -> int:
        self.item.restock(1)
        self.app.save(self.item)
        return 1


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


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Row:
    label: str
    workload: str
    ours: str | None
    library: str | None
    unit: str  # "events/s" or "ms"
    target: float | None = None  # ours/raw: at least (events/s) or at most (ms)
    raw: str = "raw"


ROWS = [
    Row(
        "append 1 event/tx, new stream each",
        "append_1_new_stream",
        "ours",
        "library",
        "events/s",
        0.9,
    ),
    Row(
        "  plain INSERT into event_store, no guard",
        "append_1_new_stream",
        "sql_insert",
        None,
        "events/s",
    ),
    Row(
        "  our SQL on a plain psycopg connection",
        "append_1_new_stream",
        "sql_guarded",
        None,
        "events/s",
    ),
    Row(
        "append 1 event/tx, same stream", "append_1_same_stream", "ours", "library", "events/s", 0.9
    ),
    Row(
        "  same, ours in transaction.atomic()",
        "append_1_same_stream",
        "ours_atomic",
        None,
        "events/s",
    ),
    Row(
        "  same, domain: Repository.save / Application.save",
        "append_1_same_stream",
        "ours_repository",
        "library_application",
        "events/s",
    ),
    Row("append 10 events/tx", "append_10_per_tx", "ours", "library", "events/s", 0.8),
    Row("append 100 events/tx", "append_100_per_tx", "ours", "library", "events/s", 0.8),
    Row(
        "  raw as multi-row VALUES, not unnest",
        "append_100_per_tx",
        None,
        None,
        "events/s",
        raw="raw_values",
    ),
    Row("4 writer processes, 1 event/tx", "writers_4", "ours", "library", "events/s"),
    Row("16 writer processes, 1 event/tx", "writers_16", "ours", "library", "events/s", 0.8),
    Row("load 1,000-event aggregate, full replay", "load_1000", "ours", "library", "ms", 1.5),
    Row("  ours from snapshot (SNAPSHOT_EVERY=20)", "load_1000", "ours_snapshot", None, "ms", 1.5),
    Row("  ours read_stream only, no decode/apply", "load_1000", "ours_read_stream", None, "ms"),
    Row("read global log in batches of 1,000", "read_log", "ours", "library", "events/s", 0.8),
    Row(
        "  our query, binary rows left as tuples",
        "read_log",
        "sql_fetch",
        None,
        "events/s",
    ),
]


def postgres_version(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        return "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0].split()[0]


def metric(workload: str, impl: str, unit: str) -> str:
    return f"{workload}_{impl}_{'ms' if unit == 'ms' else 'events_per_s'}"


def report(results: Results, sizes: Sizes, args: argparse.Namespace) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for workload, per_impl in results.items():
        unit = "ms" if workload.startswith("load") else "events/s"
        for impl, values in per_impl.items():
            flat[metric(workload, impl, unit)] = round(median(values), 3)
            if impl != "raw":
                flat[f"{workload}_{impl}_raw_ratio"] = round(
                    paired_ratio(values, per_impl["raw"]), 3
                )
    rows, met, total = [], 0, 0
    for row in ROWS:
        if row.workload not in results:
            continue
        data = results[row.workload]

        def value(impl: str | None, data: dict[str, list[float]] = data) -> float | None:
            return median(data[impl]) if impl else None

        def ratio(impl: str | None, workload: str = row.workload) -> str:
            return f"{flat[f'{workload}_{impl}_raw_ratio']:.2f}x" if impl else "-"

        verdict, target = "", "-"
        if row.target is not None and row.ours:
            ours_ratio = flat[f"{row.workload}_{row.ours}_raw_ratio"]
            ok = ours_ratio >= row.target if row.unit != "ms" else ours_ratio <= row.target
            target = f"{'>=' if row.unit != 'ms' else '<='} {row.target}x"
            verdict = "met" if ok else "MISSED"
            met, total = met + ok, total + 1
            flat[f"{row.workload}_{row.ours}_target_met"] = int(ok)
        rows.append(
            [
                row.label,
                row.unit,
                format_number(value(row.ours)),
                format_number(value(row.library)),
                format_number(value(row.raw)),
                ratio(row.ours),
                ratio(row.library),
                target,
                verdict,
            ]
        )
    headers = [
        "workload",
        "unit",
        "ours",
        "library",
        "raw",
        "ours/raw",
        "lib/raw",
        "target",
        "ours",
    ]
    print(render_table(headers, rows))
    print(
        f"\n{met} of {total} targets met; medians of {sizes.rounds} interleaved rounds"
        f" ({sizes.writer_rounds} for the writer processes)."
    )
    flat.update(
        {
            "targets_met": met,
            "targets_total": total,
            "rounds": sizes.rounds,
            "writer_rounds": sizes.writer_rounds,
            "quick": int(args.quick),
            "read_log_events": sizes.log_events,
            "read_log_batch": sizes.log_batch,
            "load_aggregate_events": sizes.aggregate_events,
            "machine": f"{machine()}, {postgres_version(args.database_url)}",
            "when": now_iso(),
        }
    )
    return flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke size (CI, < 60 s)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per workload")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL),
        help="PostgreSQL database to (re)create; its name must start with bench_",
    )
    parser.add_argument(
        "--only",
        default="log,load,append,writers",
        help="comma-separated subset of: log, load, append, writers",
    )
    parser.add_argument("--output", type=Path, help="results file (default bench/results/)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else DEFAULT
    if args.rounds:
        sizes = Sizes(**{**sizes.__dict__, "rounds": args.rounds, "writer_rounds": args.rounds})
    only = set(args.only.split(","))
    url = args.database_url

    started = time.perf_counter()
    recreate_database(url)
    setup_django(url)
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
    app = LibraryBench(env=library_env(url))

    results: Results = {}
    if "log" in only:
        run_log_read(url, sizes, app, results)
    if "load" in only:
        run_loads(url, sizes, app, results)
    if "append" in only:
        run_appends(url, sizes, app, results)
    # Writer processes fork from here: no connection may be open across the fork.
    app.close()
    connections.close_all()
    if "writers" in only:
        run_writers(url, sizes, results)

    print()
    flat = report(results, sizes, args)
    flat["duration_s"] = round(time.perf_counter() - started, 1)
    path = write_results("eventstore", flat, args.output)
    print(
        f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
        f" in {flat['duration_s']} s"
    )


if __name__ == "__main__":
    main()
