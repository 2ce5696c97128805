"""The statements every command, reply and batch runs, straight on psycopg.

Django's PostgreSQL backend binds parameters on the client: every query is rendered into
one string in Python, literal by literal, and parsed again by the server. For the few
statements on the hot paths (the outbox, the inbox, the relay, saga and read-model rows)
that rendering cost more than the statement. Here they run on a plain psycopg cursor over
Django's own connection, so inside the same transaction, with the parameters sent apart
and the statement prepared once per connection.

Django turns psycopg's prepared statements off (`prepare_threshold=None`) unless the
database's OPTIONS set `prepare_threshold`, and psycopg then ignores `prepare=True`. So
unless OPTIONS say otherwise (set it to None for a pooler that cannot keep prepared
statements), the connection gets a threshold no other query reaches: only these
statements are prepared, and Django's own cursors never prepare.

A test capturing queries (`CaptureQueriesContext`) sees these statements as it sees
Django's.

What it buys, measured by `bench/statements.py` (2026-12-07, AMD EPYC 2 cores, PostgreSQL
15; 20 statements a transaction, ratios to Django's default cursor in the same run): the
inbox claim 1.23x and an Idempotency-Key lookup 1.19x. Django's own OPTIONS
`server_side_binding=True` with `prepare_threshold=1` did better on both (1.44x, 1.72x),
so for single statements this module is not the fastest way: moving the hot statements to
Django's cursor with those options (checked against the whole suite, and with
`DATABASE_PREPARED_STATEMENTS=0` for a pooler) is the open step. What this module keeps
alone is `instances` (model instances from binary rows, without the ORM's compiler) and the
row writer's batches (4.9x a batch of 500 upserts; `row_writer.py`).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, models

M = TypeVar("M", bound=models.Model)

# A psycopg prepare threshold that only `execute(..., prepare=True)` reaches.
_EXPLICIT_PREPARE_ONLY = 2**62


@contextlib.contextmanager
def cursor(using: str = DEFAULT_DB_ALIAS) -> Iterator[psycopg.Cursor[Any]]:
    """A psycopg cursor (server-side parameters) on the connection of `using`.

    As a Django cursor would: the connection is health-checked first (CONN_HEALTH_CHECKS),
    a transaction marked for rollback refuses the statement (TransactionManagementError),
    and a database error inside the block is raised as Django's own (`django.db.Error`
    and its kinds) and marks the connection, so `close_old_connections` drops a broken
    one rather than keeping it for CONN_MAX_AGE. Django's `execute_wrappers` are not
    applied."""
    connection = connections[using]
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    # As Django's cursor does before each statement: none in a transaction already
    # doomed to roll back (an error caught inside `atomic`), none from another thread.
    connection.validate_no_broken_transaction()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        raw = connection.connection
        prepare = "prepare_threshold" not in connection.settings_dict.get("OPTIONS", {})
        if prepare and raw.prepare_threshold is None:
            raw.prepare_threshold = _EXPLICIT_PREPARE_ONLY
        with psycopg.Cursor(raw) as cur:
            yield cur


def execute(
    cur: psycopg.Cursor[Any],
    sql: str,
    params: Sequence[Any] = (),
    *,
    binary: bool = False,
    using: str = DEFAULT_DB_ALIAS,
) -> psycopg.Cursor[Any]:
    """Run `sql` prepared; logged like a Django query when the connection logs queries."""
    started = time.monotonic()
    cur.execute(sql, params, prepare=True, binary=binary)
    _log(sql, started, using)
    return cur


def fetchall(
    sql: str, params: Sequence[Any] = (), *, using: str = DEFAULT_DB_ALIAS, binary: bool = False
) -> list[tuple[Any, ...]]:
    with cursor(using) as cur:
        return execute(cur, sql, params, binary=binary, using=using).fetchall()


def instances(
    model: type[M], where: str, params: Sequence[Any] = (), *, using: str = DEFAULT_DB_ALIAS
) -> list[M]:
    """The rows of `model`'s table that `where` picks, as model instances (binary results:
    for a model whose fields `loads_as_the_orm`)."""
    names = [field.attname for field in model._meta.concrete_fields]
    rows = fetchall(select(model, where), params, using=using, binary=True)
    return [model.from_db(using, names, row) for row in rows]


# Bounded: every rebuild makes shadow models of its own.
@functools.lru_cache(maxsize=256)
def select(model: type[models.Model], where: str) -> str:
    """`SELECT` every column of `model` (in field order) `FROM` its table `WHERE where`."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in model._meta.concrete_fields)
    return f"SELECT {columns} FROM {quote(model._meta.db_table)} WHERE {where}"


def run(sql: str, params: Sequence[Any] = (), *, using: str = DEFAULT_DB_ALIAS) -> int:
    """Run a statement that returns no rows; the number of rows it changed."""
    with cursor(using) as cur:
        return execute(cur, sql, params, using=using).rowcount


def _log(sql: str, started: float, using: str) -> None:
    connection = connections[using]
    if connection.queries_logged:
        connection.queries_log.append(
            {"sql": sql, "time": f"{time.monotonic() - started:.3f}", "alias": using}
        )


# Field types whose binary results psycopg loads as the ORM returns them (JSON without a
# decoder of its own included). Others (an IP address, which Django reads as text; a field
# with `from_db_value`) must go through the ORM.
AS_THE_ORM = frozenset(
    {
        "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField",
        "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
        "PositiveSmallIntegerField", "BooleanField", "CharField", "TextField", "SlugField",
        "EmailField", "URLField", "UUIDField", "DecimalField", "FloatField", "DateField",
        "DateTimeField", "TimeField", "DurationField", "JSONField",
    }
)  # fmt: skip


def loads_as_the_orm(fields: Iterable[Any]) -> bool:
    """Whether binary results of these model fields' columns equal what the ORM returns."""
    return all(_loads_as_the_orm(field) for field in fields)


def column_field(field: Any) -> Any:
    """The field that describes `field`'s column: a foreign key's target field."""
    return field.target_field if field.is_relation else field


def _loads_as_the_orm(field: Any) -> bool:
    column = column_field(field)
    converts = getattr(type(column), "from_db_value", None)
    return (
        column.get_internal_type() in AS_THE_ORM
        and converts in (None, models.JSONField.from_db_value)
        and not getattr(column, "decoder", None)
    )
