"""Read-model rows as plain dicts, loaded on first use and written in bulk.

A projection's handlers work on `ReadState`: for each table the projection owns, the rows
the current batch has touched, keyed by primary key. Nothing is written until `flush`,
which upserts every changed row in one statement per table. Every row that a model gives
`last_transaction_id` and `last_position` columns is stamped with the log position of the
last event that changed it, which is what lets a websocket client resume from a position.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from django.apps.registry import Apps
from django.db import connection, models

from platform_core.eventsourcing.eventstore import LOG_START, LogPosition
from platform_core.storage import pg
from platform_core.storage.backends import backend
from platform_core.storage.row_writer import Row, RowWriter

__all__ = ["ReadState", "Row", "TableRows", "quoted_columns", "shadow_model"]

_POSITION_FIELDS = ("last_transaction_id", "last_position")


class TableRows:
    """The rows of one table that a batch has read or changed.

    `fresh` says the table was empty when the batch began and nobody else writes it (a
    rebuild's shadow table), so a key not yet seen needs no query to know it is absent.
    """

    def __init__(self, model: type[models.Model], *, fresh: bool = False) -> None:
        self.model = model
        self._fields = [field.attname for field in model._meta.concrete_fields]
        self._key = model._meta.pk.attname
        self._stamps = all(name in self._fields for name in _POSITION_FIELDS)
        self._fresh = fresh
        # A column the ORM converts in its own way is read through the ORM.
        self._binary = pg.loads_as_the_orm(model._meta.concrete_fields)
        self._writer = _writer_of(model)
        self._written: set[Any] = set()
        self._rows: dict[Any, Row | None] = {}
        self._dirty: set[Any] = set()
        self.position: LogPosition = LOG_START

    def get(self, key: Any) -> Row | None:
        """The row with primary key `key` as the batch sees it, or None."""
        if key not in self._rows:
            self.preload([key])
        return self._rows[key]

    def preload(self, keys: Iterable[Any]) -> None:
        """Load the rows with these primary keys that the batch has not seen yet."""
        wanted = {key for key in keys if key not in self._rows}
        if not wanted:
            return
        if not self._fresh:
            for row in self._select(wanted):
                self._rows[row[self._key]] = row
        for key in wanted:
            self._rows.setdefault(key, None)

    def _select(self, keys: set[Any]) -> Iterable[Row]:
        if not backend().prepared or not self._binary:
            return self.model._default_manager.filter(pk__in=keys).values(*self._fields)
        # One prepared statement for any number of keys. Binary results come back as
        # the ORM gives them (JSON decoded, numeric as Decimal), without its compiler.
        names = self._fields
        key = connection.ops.quote_name(str(self.model._meta.pk.column))
        rows = pg.fetchall(pg.select(self.model, f"{key} = ANY(%s)"), [list(keys)], binary=True)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def put(self, row: Row) -> None:
        """Insert or replace a row (a dict of every column by attname)."""
        key = row[self._key]
        if self._stamps:
            row["last_transaction_id"], row["last_position"] = self.position
        self._rows[key] = row
        self._dirty.add(key)

    def __len__(self) -> int:
        return len(self._rows)

    def flush(self) -> list[Row]:
        """Write the changed rows; return them."""
        changed = [row for key in self._dirty if (row := self._rows[key]) is not None]
        if self._fresh:
            # Nothing else writes a fresh table: a row not written before is new.
            new = [row for row in changed if row[self._key] not in self._written]
            self._writer.insert(new)
            self._writer.upsert([row for row in changed if row[self._key] in self._written])
            self._written.update(row[self._key] for row in new)
        else:
            self._writer.upsert(changed)
        self._dirty.clear()
        return changed

    def forget(self) -> None:
        """Drop cached rows (after a flush) so memory stays bounded; later reads query."""
        self._rows.clear()
        self._written.clear()
        self._fresh = False


# Bounded: every rebuild makes shadow models of its own.
@functools.lru_cache(maxsize=64)
def _writer_of(model: type[models.Model]) -> RowWriter:
    # One for each table, not each batch: a writer builds its statements once.
    return RowWriter(model)


class ReadState:
    """The batch's view of a projection's tables, keyed by the live model class."""

    def __init__(self, tables: Mapping[type[models.Model], TableRows]) -> None:
        self._tables = dict(tables)

    @classmethod
    def live(cls, models_: Iterable[type[models.Model]]) -> ReadState:
        return cls({model: TableRows(model) for model in models_})

    def __getitem__(self, model: type[models.Model]) -> TableRows:
        return self._tables[model]

    def preload(self, keys: Iterable[Iterable[tuple[type[models.Model], Any]]]) -> None:
        """Load, in one query per table, the rows named as (live model, key) pairs."""
        by_model: dict[type[models.Model], list[Any]] = {}
        for pairs in keys:
            for model, key in pairs:
                by_model.setdefault(model, []).append(key)
        for model, wanted in by_model.items():
            self._tables[model].preload(wanted)

    def at(self, position: LogPosition) -> None:
        """The event being applied now is at `position` (stamped on rows it puts)."""
        for rows in self._tables.values():
            rows.position = position

    def flush(self) -> dict[type[models.Model], list[Row]]:
        return {model: rows.flush() for model, rows in self._tables.items()}

    def cached_rows(self) -> int:
        return sum(len(rows) for rows in self._tables.values())

    def forget(self) -> None:
        for rows in self._tables.values():
            rows.forget()


def shadow_model(model: type[models.Model], table: str) -> type[models.Model]:
    """A copy of `model` over another table, registered apart from the project's apps.

    Fields are cloned (so the columns match) without their indexes: a shadow table is
    written in bulk and looked up by primary key only, and index names are global in
    PostgreSQL and SQLite.
    """
    meta = type(
        "Meta",
        (),
        {"db_table": table, "app_label": model._meta.app_label, "apps": Apps(), "managed": False},
    )
    attrs: dict[str, Any] = {"__module__": model.__module__, "Meta": meta}
    for field in model._meta.local_concrete_fields:
        _, _, args, kwargs = field.deconstruct()
        attrs[field.name] = type(field)(*args, **{**kwargs, "db_index": False})
    return type(f"{model.__name__}Shadow", (models.Model,), attrs)


def quoted_columns(model: type[models.Model]) -> str:
    return ", ".join(connection.ops.quote_name(str(f.column)) for f in model._meta.concrete_fields)
