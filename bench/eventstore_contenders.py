"""The contenders of eventstore.py, side by side in one database: the library's application
and aggregate, the raw table and its SQL, the pre-encoded payloads all of them store, and
per workload one class per contender whose op() appends a transaction's worth of events."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlparse

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate as LibraryAggregate
from eventsourcing.domain import event

LIBRARY_TOPIC = "inventory.events:StockReplenished"


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
