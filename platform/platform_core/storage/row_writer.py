"""Whole rows written without model instances: the projector's tables, the saga engine's
instances and the outbox, where building Django model instances for bulk_create or
bulk_update cost more CPU than the writes themselves.

On PostgreSQL a batch is one prepared statement whatever its size. Rows whose values are
plain (strings, numbers, UUIDs, datetimes, decimals, JSON) go as one JSON document that
msgspec encodes in C and `json_populate_recordset` turns back into rows of the table's own
types: each value goes through its column type's input function, so a string too long for
its column is refused as an ORM insert refuses it. Other rows (a value the ORM must
prepare, such as an expression) go as one array parameter a column, prepared by the
model's fields and unnested. The JSON path does not run Django's field validation: a
value the ORM would refuse or convert (NaN, a Decimal inside a JSON field, True for an
integer) is stored as msgspec encodes it or refused by PostgreSQL, so the callers give
values of their fields' types. Per value, psycopg's array dumping and Django's
`get_db_prep_save` had cost several times the JSON encoding. An executemany sent one
statement a row, each rendered into SQL text by Django's client-side binding.

Measured by `bench/statements.py` (2026-12-07, AMD EPYC 2 cores, PostgreSQL 15): 500
saga-instance rows upserted whole run 4.9x the rows a second of Django's
`bulk_create(update_conflicts=True)` from the same dicts, and 4.3x the same with Django's
`server_side_binding` and `prepare_threshold` options (1.13x)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from django.db import DEFAULT_DB_ALIAS, connection, connections, models

from platform_core.storage import pg

Row = dict[str, Any]


class RowWriter:
    """Writes whole rows: `upsert` (`INSERT … ON CONFLICT (pk) DO UPDATE`), `insert` of
    rows known to be new (COPY on PostgreSQL) and `append` (a plain INSERT: for a few
    rows, where COPY costs more). On PostgreSQL `upsert` and `append` are one statement a
    batch; elsewhere an executemany.

    No model instance is built: for a rebuild that is most of what Django's bulk_create
    costs. Values go as they are in a JSON document when they are plain (see the module's
    docstring), else prepared by the model's own fields.
    `numbered` leaves the key out for the database to fill (an auto-increment key, in
    insertion order); `upsert` needs the key, and takes each key once. A row is a dict by
    attribute name (`customer_id` for a foreign key) with every field's key (KeyError
    otherwise, rather than a NULL written in its place); keys that name no field are ignored.
    """

    def __init__(self, model: type[models.Model], *, numbered: bool = False) -> None:
        quote = connection.ops.quote_name
        self._fields = [
            field for field in model._meta.concrete_fields if not (numbered and field.primary_key)
        ]
        columns = [quote(str(field.column)) for field in self._fields]
        key = quote(str(model._meta.pk.column))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
        self._table = f"{quote(model._meta.db_table)} ({', '.join(columns)})"
        self._insert = f"INSERT INTO {self._table} VALUES ({', '.join(['%s'] * len(columns))})"
        self._names = [field.attname for field in self._fields]
        self._keys = frozenset(self._names)
        self._json = {f.attname for f in self._fields if isinstance(f, models.JSONField)}
        self._on_conflict = f" ON CONFLICT ({key}) DO UPDATE SET {updates}"
        self._unnest: str | None = None  # built from a PostgreSQL connection's types
        self._recordset = (
            f"INSERT INTO {self._table} SELECT {', '.join(f'given.{c}' for c in columns)}"
            f" FROM json_populate_recordset(NULL::{quote(model._meta.db_table)}, %s::json)"
            " WITH ORDINALITY AS given ORDER BY given.ordinality"
            if all(_plain_in_json(field) for field in self._fields) and "ordinality" not in columns
            else None
        )

    def upsert(self, rows: list[Row]) -> None:
        self._execute(rows, then=self._on_conflict)

    def append(self, rows: list[Row]) -> None:
        self._execute(rows)

    def insert(self, rows: list[Row]) -> None:
        database = connections[DEFAULT_DB_ALIAS]
        if database.vendor != "postgresql":
            self._execute(rows)
            return
        # COPY's text format takes the JSON as text, so it is encoded here by msgspec,
        # several times faster than the json module behind psycopg's Jsonb; other values
        # are Python types psycopg adapts as they are.
        encode, names, json_fields = _plain_encoder.encode, self._names, self._json
        with (
            database.cursor() as cursor,
            cursor.cursor.copy(f"COPY {self._table} FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(
                    [encode(row[n]).decode() if n in json_fields else row[n] for n in names]
                )

    def _execute(self, rows: list[Row], *, then: str = "") -> None:
        """Insert `rows`, `then` the statement's ON CONFLICT clause if any."""
        if not rows:
            return
        database = connections[DEFAULT_DB_ALIAS]
        if database.vendor == "postgresql":
            # A row without one of the fields would be written with NULL there: the
            # arrays below refuse it (KeyError), as on SQLite.
            if self._recordset is not None and all(self._keys <= row.keys() for row in rows):
                try:
                    document = _plain_encoder.encode(rows)
                except _NotPlain:
                    pass  # a value the field must prepare: the arrays below
                else:
                    pg.run(self._recordset + then, [document.decode()])
                    return
            prepared = self._prepared(rows, database)
            columns = [list(column) for column in zip(*prepared, strict=True)]
            pg.run(self._unnest_insert(database) + then, columns)
            return
        with database.cursor() as cursor:
            cursor.executemany(self._insert + then, self._prepared(rows, database))

    def _unnest_insert(self, database: Any) -> str:
        # In the order given (WITH ORDINALITY): ids the database numbers follow it, and
        # the relay publishes the outbox in id order.
        if self._unnest is None:
            arrays = ", ".join(f"%s::{_array_of(field, database)}" for field in self._fields)
            names = [f"c{n}" for n in range(len(self._fields))]
            self._unnest = (
                f"INSERT INTO {self._table} SELECT {', '.join(names)}"
                f" FROM unnest({arrays}) WITH ORDINALITY AS given({', '.join(names)}, n)"
                " ORDER BY n"
            )
        return self._unnest

    def _prepared(self, rows: list[Row], database: Any) -> list[list[Any]]:
        # The connection itself, not django.db.connection: that proxy costs a lookup in a
        # context-local store on every one of the many calls here.
        fields = self._fields
        return [
            [field.get_db_prep_save(row[field.attname], database) for field in fields]
            for row in rows
        ]


class _NotPlain(TypeError):
    """A value msgspec does not encode by itself (an expression, a model instance)."""


def _refuse(value: Any) -> Any:
    raise _NotPlain(f"Encoding objects of type {type(value).__name__} is unsupported")


# RFC 3339 datetimes, canonical UUIDs and decimals as strings: what each column type's input
# function reads back exactly.
_plain_encoder = msgspec.json.Encoder(enc_hook=_refuse, decimal_format="string")

# Django's own fields whose value the column type's input function reads from its JSON
# form as the field would prepare it (a JSON field without an encoder of its own); a field
# of another class may prepare values its own way. Not floats (JSON has no NaN or
# infinity), times or durations (their JSON forms are not the ones Django sends).
_PLAIN = pg.AS_THE_ORM - {"FloatField", "TimeField", "DurationField"}


def _plain_in_json(field: Any) -> bool:
    column = pg.column_field(field)
    return (
        field.attname == field.column
        and type(column).__module__.startswith("django.")
        and column.get_internal_type() in _PLAIN
        and getattr(column, "encoder", None) is None
    )


def _array_of(field: models.Field[Any, Any], database: Any) -> str:
    """The array type of the field's column without its modifier (`varchar`, not
    `varchar(20)`): an explicit cast to `varchar(n)` would cut a longer string short,
    where storing it in the column refuses it, as an ORM insert does."""
    return _MODIFIER.sub("", str(field.db_type(database))) + "[]"


_MODIFIER = re.compile(r"\(.*?\)")
