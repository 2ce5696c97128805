"""The database backend: chosen once per connection alias, and the statements whose dialect
differs give the same answers on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from platform_core.models import ProjectionCheckpoint
from platform_core.storage.backends import PostgresBackend, SqliteBackend, backend
from tests.platform_core.messaging.messaging_support import wait_until

pytestmark = pytest.mark.django_db

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_the_backend_is_chosen_once_from_the_vendor():
    expected = PostgresBackend if connection.vendor == "postgresql" else SqliteBackend

    assert type(backend()) is expected
    assert backend() is backend("default")


def test_claiming_returns_only_the_ids_not_claimed_before():
    first = backend().claim_inbox("tests", ["a", "b"], AT)
    again = backend().claim_inbox("tests", ["b", "c"], AT)

    assert (first, again) == ({"a", "b"}, {"c"})
    assert backend().claim_inbox("other-consumer", ["a"], AT) == {"a"}


def test_saving_fields_writes_those_and_the_auto_now_time_only():
    checkpoint = ProjectionCheckpoint.objects.create(name="p", error="old", position=1)
    ProjectionCheckpoint.objects.filter(pk=checkpoint.pk).update(updated_at=AT - timedelta(days=1))
    checkpoint.position, checkpoint.error = 7, "new"
    before = timezone.now()

    backend().save_fields(checkpoint, ["position", "updated_at"])

    stored = ProjectionCheckpoint.objects.get(pk=checkpoint.pk)
    assert (stored.position, stored.error) == (7, "old")
    assert stored.updated_at >= before


def test_locked_rows_are_the_rows_the_queryset_picks():
    for name in ("a", "b", "c"):
        ProjectionCheckpoint.objects.create(name=name)
    rows = ProjectionCheckpoint.objects.filter(name__in=["a", "c"]).order_by("name")

    with transaction.atomic():
        found = backend().locked(rows, "name = ANY(%s) ORDER BY name FOR UPDATE", [["a", "c"]])

    assert [row.name for row in found] == ["a", "c"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_session_told_to_end_when_idle_is_ended_idle_in_a_transaction_too():
    """What frees a hung relay leader's lock: it may hang between two statements of the
    transaction that marks what it published."""
    pids: list[int] = []
    release = threading.Event()
    failed: list[BaseException] = []

    def hang_in_a_transaction() -> None:
        try:
            backend().end_session_when_idle(0.5)
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    pids.append(cursor.fetchone()[0])
                release.wait(60)
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
        except DatabaseError as error:
            failed.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=hang_in_a_transaction)
    thread.start()
    try:
        wait_until(lambda: bool(pids), what="the session to begin its transaction")
        wait_until(lambda: not session_alive(pids[0]), what="the server to end the session")
    finally:
        release.set()
        thread.join(timeout=30)
    assert failed, "the hung session's next statement finds it ended"


def session_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return bool(cursor.fetchone()[0])
