"""A worker keeps its connection across tasks without a health-check query on each
(CONN_HEALTH_CHECKS=0): a command that fails because that connection had died runs again
at once on a new one, spending none of its attempts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
from django.db import (
    OperationalError,
    close_old_connections,
    transaction,
)

from inventory.tasks import restock_product
from platform_core.commands import celery_commands
from platform_core.messaging.inbox import claim
from platform_core.storage import pg
from tests.support import terminate_this_connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def handled(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A bus that claims the command in the inbox and records the backend that ran it."""
    runs: list[int] = []

    def handle(command: Any, context: Any, first: Callable[[], None]) -> None:
        with transaction.atomic():
            first()
            runs.append(int(pg.fetchall("SELECT pg_backend_pid()")[0][0]))

    bus = SimpleNamespace(handle=handle)
    monkeypatch.setattr(celery_commands, "_wired", lambda: SimpleNamespace(bus=bus))
    restock_product.push_request(is_eager=False, retries=0, headers={})
    try:
        yield runs
    finally:
        restock_product.pop_request()


def test_a_command_on_a_connection_that_died_runs_again_on_a_new_one(handled):
    dead = terminate_this_connection()
    command_id = uuid4()

    outcome = restock_product.execute(SimpleNamespace(command_id=command_id))

    assert outcome == celery_commands.PROCESSED
    assert len(handled) == 1
    assert handled[0] != dead
    assert not claim("command:inventory", [str(command_id)]), "claimed once, by the run"


def test_a_command_failing_twice_on_new_connections_fails(handled, monkeypatch):
    """Only once: a command whose own statements break the connection is not re-run
    for ever; it fails as any failure does (retried, then dead-lettered)."""
    terminate_this_connection()
    original = celery_commands.database_reachable

    def reachable_then_dying() -> bool:
        answer = original()
        terminate_this_connection()
        return answer

    monkeypatch.setattr(celery_commands, "database_reachable", reachable_then_dying)

    with pytest.raises(OperationalError):
        restock_product.execute(SimpleNamespace(command_id=uuid4()))
    assert handled == []
    close_old_connections()  # the broken one, before the test database is flushed
