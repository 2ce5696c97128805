"""The hot-path statements on psycopg (`platform_core.storage.pg`): prepared once per connection,
a batch of rows in one statement, and values that read and write as the ORM's."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.db import (
    DEFAULT_DB_ALIAS,
    DataError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.db.models import GenericIPAddressField, JSONField, Value
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from platform_core.commands.command_outbox import relay_lanes
from platform_core.eventsourcing.eventstore import EventMetadata, RecordedEvent
from platform_core.messaging.envelope import Envelope, Outgoing, PublishReport
from platform_core.messaging.inbox import claim
from platform_core.messaging.outbox import Outbox
from platform_core.messaging.relay import OutboxRelay
from platform_core.models import (
    IdempotencyRecord,
    InboxMessage,
    OutboxMessage,
    ProjectionCheckpoint,
)
from platform_core.projections.checkpoints import advance, locked_checkpoint
from platform_core.projections.read_models import ReadState, Row
from platform_core.storage import pg
from platform_core.storage.row_writer import RowWriter
from platform_core.web.token_auth import PreparedTokenAuthentication
from projections.models import OrderSummary
from tests.support import terminate_this_connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LONDON = ZoneInfo("Europe/London")
# Characters a text array literal must quote, and a string that reads like its NULL.
AWKWARD = 'say "hi", {braces} \\ back'


def _summary(status: str, total: str, at: datetime) -> Row:
    return {
        "id": uuid.uuid4(),
        "customer_id": 2**40,
        "status": status,
        "items": [{"sku": "MUG-1", "quantity": 2, "tags": ["a", None], "x": {"y": [1.5, True]}}],
        "total": Decimal(total),
        "payment_status": "NULL",
        "shipment_id": "",
        "shipment_status": "",
        "tracking_number": "",
        "cancellation_reason": AWKWARD,
        "history": [{"event": "placed", "note": AWKWARD, "nothing": None}, "ünïcode"],
        "placed_at": at,
        "updated_at": at + timedelta(microseconds=1),
        "last_transaction_id": 9_000_000_000,
        "last_position": 42,
    }


def _typed(row: Mapping[str, Any] | None) -> dict[str, tuple[type, Any]]:
    """Values with their types: Decimal("7.50") == 7.5 must not pass for a float."""
    assert row is not None
    return {name: (type(value), value) for name, value in row.items()}


def _summaries(keys: Sequence[uuid.UUID]) -> list[dict[str, tuple[type, Any]]]:
    return [_typed(OrderSummary.objects.filter(pk=key).values().get()) for key in keys]


# A batch of plain rows goes as one JSON document; a batch with a value its field must
# prepare (an expression), as one array a column.
AS_JSON, AS_ARRAYS = "json_populate_recordset(", "unnest("


def _one_statement(queries: CaptureQueriesContext, kind: str) -> str:
    assert len(queries.captured_queries) == 1, "one statement for the whole batch"
    sql = queries.captured_queries[0]["sql"]
    assert kind in sql, f"not an insert from {kind}): {sql}"
    return sql


def test_an_upsert_of_several_rows_is_one_statement_that_replaces_and_round_trips() -> None:
    # Summer time, +01:00 (a time in a DST gap or fold never equals one in another zone).
    at = datetime(2026, 7, 1, 9, 30, 15, 123456, tzinfo=LONDON)
    rows = [_summary(status, total, at) for status, total in (("placed", "123456789012.34"),
            ("paid", "0.10"), ("shipped", "-7.50"))]  # fmt: skip
    existing = {**_summary("old", "1.00", at - timedelta(days=9)), "id": rows[0]["id"]}
    OrderSummary.objects.create(**{**existing, "items": [], "history": {"old": 1}})

    with CaptureQueriesContext(connection) as queries:
        RowWriter(OrderSummary).upsert([dict(row) for row in rows])

    assert "ON CONFLICT" in _one_statement(queries, AS_JSON)
    assert OrderSummary.objects.count() == 3
    assert _summaries([row["id"] for row in rows]) == [_typed(row) for row in rows]


@pytest.mark.parametrize(
    ("bodies", "kind", "nulls"),
    [
        pytest.param(
            {
                "sql-null": None,
                "json-null": Value(None, JSONField()),  # an expression: arrays
                "nested": {"a": [None, {"b": "NULL"}], "c": AWKWARD},
            },
            AS_ARRAYS,
            ({"sql-null"}, {"json-null"}),
            id="arrays",
        ),
        pytest.param(
            {
                "sql-null": None,
                "string": "NULL",
                "number": 5,
                "list": [None, AWKWARD, "ünïcode"],
                "nested": {"a": [None, {"b": "NULL"}], "c": AWKWARD, "d": 1.5},
            },
            AS_JSON,
            ({"sql-null"}, set()),
            id="json",
        ),
    ],
)
def test_an_append_stores_nulls_and_json_values_as_the_orm_does(
    bodies: dict[str, Any], kind: str, nulls: tuple[set[str], set[str]]
) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with CaptureQueriesContext(connection) as queries:
        RowWriter(IdempotencyRecord, numbered=True).append(
            [
                {"owner": "writer", "key": key, "fingerprint": AWKWARD, "status_code": None,
                 "body": body, "location": "", "created_at": at}
                for key, body in bodies.items()
            ]
        )  # fmt: skip
    _one_statement(queries, kind)
    for key, body in bodies.items():
        IdempotencyRecord.objects.create(owner="orm", key=key, fingerprint=AWKWARD, body=body)

    def stored(owner: str) -> tuple[set[str], set[str], list[tuple[Any, ...]]]:
        rows = IdempotencyRecord.objects.filter(owner=owner)
        columns = ("key", "fingerprint", "status_code", "body", "location")
        return (
            set(rows.filter(body__isnull=True).values_list("key", flat=True)),
            set(rows.filter(body=None).values_list("key", flat=True)),  # JSON null
            list(rows.order_by("key").values_list(*columns)),
        )

    assert stored("writer")[:2] == nulls
    assert stored("writer") == stored("orm")
    written = IdempotencyRecord.objects.filter(owner="writer")
    assert set(written.values_list("created_at", flat=True)) == {at}


def test_pg_prepares_its_statements_with_server_side_parameters_and_the_orm_does_not() -> None:
    sql = "SELECT %s::text AS pg_prepared_marker"
    with pg.cursor() as cursor:
        for value in ("a", "b"):
            assert pg.execute(cursor, sql, [value]).fetchone() == (value,)
    for _ in range(2):
        marked = ProjectionCheckpoint.objects.annotate(orm_prepared_marker=Value(1))
        assert list(marked.values_list("orm_prepared_marker")) == []

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    assert statements.count("SELECT $1::text AS pg_prepared_marker") == 1
    assert not [s for s in statements if "orm_prepared_marker" in s]


def test_claim_returns_only_ids_no_earlier_claim_of_that_consumer_took() -> None:
    with CaptureQueriesContext(connection) as queries:
        assert claim("billing", ["m1", "m2", "m1"]) == {"m1", "m2"}
    _one_statement(queries, AS_ARRAYS)

    assert claim("billing", ["m2", "m3"]) == {"m3"}
    assert claim("billing", ["m1", "m2", "m3"]) == set()
    assert claim("shipping", ["m1"]) == {"m1"}
    claimed = InboxMessage.objects.order_by("consumer", "message_id")
    assert list(claimed.values_list("consumer", "message_id")) == [
        ("billing", "m1"), ("billing", "m2"), ("billing", "m3"), ("shipping", "m1")
    ]  # fmt: skip


def test_read_state_loads_rows_as_the_orm_reads_them_and_an_absent_key_as_none() -> None:
    at = datetime(2026, 5, 6, 7, 8, 9, 101112, tzinfo=LONDON)
    rows = [_summary("placed", "19.99", at), _summary("paid", "0.01", at + timedelta(hours=1))]
    for row in rows:
        OrderSummary.objects.create(**row)
    keys, absent = [row["id"] for row in rows], uuid.uuid4()
    state = ReadState.live([OrderSummary])

    with CaptureQueriesContext(connection) as queries:
        state.preload([[(OrderSummary, key) for key in [*keys, absent]]])
        loaded = [state[OrderSummary].get(key) for key in keys]
        assert state[OrderSummary].get(absent) is None
    assert len(queries.captured_queries) == 1, "one query for every key, absent ones included"
    assert "= ANY(" in queries.captured_queries[0]["sql"], "one array parameter for the keys"
    assert [_typed(row) for row in loaded] == _summaries(keys)
    assert state[OrderSummary].get(uuid.uuid4()) is None


def _recorded(transaction_id: int, position: int, at: datetime) -> RecordedEvent:
    return RecordedEvent(
        position=position, transaction_id=transaction_id, stream_id="order-1",
        stream_type="order", version=1, event_type="OrderPlaced", schema_version=1,
        data=b"{}", metadata=EventMetadata(event_id=uuid.uuid4()), recorded_at=at,
    )  # fmt: skip


def _columns(checkpoint: ProjectionCheckpoint) -> dict[str, Any]:
    return {f.attname: getattr(checkpoint, f.attname) for f in checkpoint._meta.concrete_fields}


def _lock_elsewhere(name: str) -> None:
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM projection_checkpoints WHERE name = %s FOR UPDATE NOWAIT", [name]
            )
    finally:
        other.close()


def test_a_locked_checkpoint_reads_as_the_orm_does_and_advance_moves_it() -> None:
    then = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    ProjectionCheckpoint.objects.create(
        name="order_summary", transaction_id=7, position=70, last_event_at=then,
        error="boom", failed_position="7.70", failed_at=then, retry_at=then,
        rebuild_requested_at=then, rebuild_status="requested",
    )  # fmt: skip
    stored = ProjectionCheckpoint.objects.get(name="order_summary")
    later = then + timedelta(minutes=5, microseconds=3)

    with transaction.atomic():
        checkpoint = locked_checkpoint("order_summary")
        assert _columns(checkpoint) == _columns(stored)
        assert (checkpoint._state.adding, checkpoint._state.db) == (False, DEFAULT_DB_ALIAS)
        with pytest.raises(OperationalError):
            _lock_elsewhere("order_summary")
        started = timezone.now()
        advance(checkpoint, [_recorded(8, 75, then), _recorded(9_000_000_000, 95, later)])

    moved = ProjectionCheckpoint.objects.get(name="order_summary")
    assert (moved.transaction_id, moved.position, moved.last_event_at) == (9_000_000_000, 95, later)
    assert (moved.error, moved.failed_position, moved.failed_at, moved.retry_at) == (
        "", "", None, None
    )  # fmt: skip
    assert moved.updated_at >= started > stored.updated_at
    assert (moved.rebuild_requested_at, moved.rebuild_status) == (then, "requested")
    assert _columns(moved) == _columns(checkpoint)


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[Envelope] = []

    def publish(self, batch: Sequence[Outgoing]) -> PublishReport:
        self.published.extend(outgoing.envelope for outgoing in batch)
        return PublishReport(delivered=[outgoing.row_id for outgoing in batch])

    def close(self) -> None:
        pass


def _envelope(correlation_id: str | None, causation_id: str | None, **extra: str) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()), type="tests.something-happened.v1", source="/tests",
        time=timezone.now(), subject="s-1", topic="tests.events.v1", key="k-1",
        data=b'{"sku": "MUG-1"}', correlation_id=correlation_id, causation_id=causation_id,
        extra=extra,
    )  # fmt: skip


def test_the_relay_publishes_the_headers_each_outbox_row_was_written_with() -> None:
    events, commands = RecordingPublisher(), RecordingPublisher()
    relay = OutboxRelay(lanes=relay_lanes(commands=commands, events=events))
    first = [
        _envelope("corr-1", "cause-1", traceparent="00-abc-def-01", tenant="acme"),
        _envelope("corr-1", None),
    ]
    Outbox().add(first)
    assert relay.relay_once() == (2, 0)

    later = [_envelope(None, "cause-2", note=AWKWARD)]
    Outbox().add(later)
    assert relay.relay_once() == (1, 0), "the lane's compiled query finds rows written since"
    assert relay.relay_once() == (0, 0)

    assert events.published == [*first, *later]
    assert commands.published == []


def test_a_string_too_long_for_its_column_is_refused_not_cut_short() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    too_long = {**_summary("x" * 21, "1.00", at)}  # status is varchar(20)

    with pytest.raises(DataError), transaction.atomic():
        RowWriter(OrderSummary).upsert([too_long])

    assert not OrderSummary.objects.exists()


def test_a_row_without_one_of_the_fields_is_refused_not_written_with_null() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    stored = _summary("placed", "1.00", at)
    RowWriter(OrderSummary).upsert([stored])
    incomplete = {k: v for k, v in _summary("paid", "2.00", at).items() if k != "placed_at"}

    with pytest.raises(KeyError, match="placed_at"), transaction.atomic():
        RowWriter(OrderSummary).upsert([{**incomplete, "id": stored["id"]}])

    assert _summaries([stored["id"]]) == [_typed(stored)]


def test_rows_appended_in_one_statement_are_numbered_in_the_order_given() -> None:
    envelopes = [_envelope(f"corr-{n}", None) for n in range(200)]
    Outbox().add(envelopes)

    numbered = OutboxMessage.objects.order_by("id").values_list("message_id", flat=True)
    assert [str(message_id) for message_id in numbered] == [e.id for e in envelopes]


def test_a_broken_connection_fails_as_django_error_and_is_dropped_though_kept_by_age() -> None:
    """As with CONN_MAX_AGE > 0: close_old_connections keeps a connection young enough,
    unless an error marked it. A statement on psycopg must mark it too."""
    connection.ensure_connection()
    connection.close_at = time.monotonic() + 600
    pid = terminate_this_connection()

    with pytest.raises(OperationalError):
        pg.fetchall("SELECT 1")
    assert connection.errors_occurred
    close_old_connections()

    assert pg.fetchall("SELECT pg_backend_pid()")[0][0] != pid


def test_nothing_is_prepared_when_the_settings_turn_prepared_statements_off() -> None:
    """DATABASE_PREPARED_STATEMENTS=0, behind a pooler that cannot keep them."""
    options = connection.settings_dict.setdefault("OPTIONS", {})
    connection.close()
    options["prepare_threshold"] = None
    try:
        with pg.cursor() as cursor:
            for value in ("a", "b", "c"):
                assert pg.execute(cursor, "SELECT %s::text AS pooled", [value]).fetchone()
            pg.execute(cursor, "SELECT statement FROM pg_prepared_statements")
            assert not [row for row in cursor.fetchall() if "pooled" in row[0]]
    finally:
        del options["prepare_threshold"]
        connection.close()


def test_a_relay_round_over_both_lanes_is_one_select_and_one_update() -> None:
    events, commands = RecordingPublisher(), RecordingPublisher()
    relay = OutboxRelay(lanes=relay_lanes(commands=commands, events=events))
    command = dataclasses.replace(_envelope("corr-c", None), topic="command:inventory")
    Outbox().add([_envelope("corr-1", None), command, _envelope("corr-2", None)])

    with CaptureQueriesContext(connection) as round_:
        assert relay.relay_once() == (3, 0)

    assert [q["sql"].split()[0] for q in round_.captured_queries] == ["(SELECT", "UPDATE"]
    assert (len(events.published), commands.published) == (2, [command])


def test_a_token_authenticates_its_user_in_one_statement_as_drf_does(django_user_model) -> None:
    user = django_user_model.objects.create_user("ada", "ada@example.com", "pw", is_staff=True)
    token = Token.objects.create(user=user)
    auth = PreparedTokenAuthentication()

    with CaptureQueriesContext(connection) as queries:
        found, found_token = auth.authenticate_credentials(token.key)

    assert len(queries.captured_queries) == 1
    assert found_token == token
    assert found_token.user is found
    drf_user, _ = TokenAuthentication().authenticate_credentials(token.key)
    fields = [f.attname for f in django_user_model._meta.concrete_fields]
    assert [getattr(found, f) for f in fields] == [getattr(drf_user, f) for f in fields]
    assert found.is_authenticated
    assert found.is_staff


def test_a_bad_or_inactive_token_is_refused_as_drf_refuses_it(django_user_model) -> None:
    user = django_user_model.objects.create_user("bob", "bob@example.com", "pw", is_active=False)
    token = Token.objects.create(user=user)

    for key in ("no-such-token", token.key):
        with pytest.raises(AuthenticationFailed) as ours:
            PreparedTokenAuthentication().authenticate_credentials(key)
        with pytest.raises(AuthenticationFailed) as drf:
            TokenAuthentication().authenticate_credentials(key)
        assert ours.value.detail == drf.value.detail


def test_a_transaction_doomed_to_roll_back_refuses_the_statement_as_django_does() -> None:
    with transaction.atomic():
        try:
            with transaction.atomic(savepoint=False):
                raise ValueError("caught below, but the transaction is doomed")
        except ValueError:
            pass
        with pytest.raises(TransactionManagementError):
            Outbox().add([_envelope("corr-1", None)])


def test_binary_results_are_used_only_for_fields_read_as_the_orm_reads_them() -> None:
    class Decoder(json.JSONDecoder):
        pass

    assert pg.loads_as_the_orm(OrderSummary._meta.concrete_fields)
    assert pg.loads_as_the_orm(get_user_model()._meta.concrete_fields)
    assert not pg.loads_as_the_orm([GenericIPAddressField()])  # Django reads inet as text
    assert not pg.loads_as_the_orm([JSONField(decoder=Decoder)])


def test_the_leading_relay_walks_the_unpublished_rows_in_id_order() -> None:
    """A bitmap scan of the unpublished-rows index visits the entry of every row published
    since the last vacuum, round after round (what the planner picks when it expects few
    unpublished rows: bench/fulfillment.py saw 1.6 ms a query after 6,500 rows); an index
    scan marks them dead as it goes. The leader's session scans in index order."""
    relay = OutboxRelay(
        lanes=relay_lanes(commands=RecordingPublisher(), events=RecordingPublisher())
    )
    try:
        assert pg.fetchall("SHOW enable_bitmapscan") == [("on",)]
        assert relay._lead()
        assert pg.fetchall("SHOW enable_bitmapscan") == [("off",)]
    finally:
        connection.close()  # the session's lock and planner setting go with it
    assert pg.fetchall("SHOW enable_bitmapscan") == [("on",)], "only the leader's session"
