"""Small helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import time

from platform_core.eventsourcing.eventstore import LOG_START, LogPosition
from platform_core.models import ProjectionCheckpoint, StoredEvent
from platform_core.projections.projector import ProjectionRunner


def stored_events() -> int:
    """How many events the store holds, whatever the log's read horizon."""
    return StoredEvent.objects.count()


def newest_stored() -> LogPosition:
    """The log position of the newest stored event, committed or not (LOG_START if none)."""
    stored = StoredEvent.objects.order_by("-transaction_id", "-position").first()
    return LogPosition(int(stored.transaction_id), stored.position) if stored else LOG_START


def catch_up_fully(
    runner: ProjectionRunner, *, stopped_ok: bool = False, seconds: float = 10.0
) -> None:
    """Catch up until every projection has read the newest stored event.

    On PostgreSQL the log shows an event only once every older transaction on the server
    has ended, so on a busy server one catch-up can stop short. A projection stopped at a
    failing event fails this, unless `stopped_ok` (then it counts as done)."""
    newest = newest_stored().position
    deadline = time.monotonic() + seconds
    while True:
        runner.catch_up()
        stopped = set(ProjectionCheckpoint.objects.exclude(error="").values_list("name", "error"))
        assert stopped_ok or not stopped, f"a projection stopped: {sorted(stopped)}"
        stopped_names = {name for name, _ in stopped}
        if all(
            name in stopped_names or runner.checkpoint(name).position == newest
            for name in runner.names
        ):
            return
        assert time.monotonic() < deadline, f"projections never reached position {newest}"
        time.sleep(0.01)


def terminate_this_connection() -> int:
    """Kill this thread's database connection from another one (PostgreSQL), as a server
    restart or an idle timeout would; its backend pid."""
    from django.db import DEFAULT_DB_ALIAS, connection, connections

    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = int(cursor.fetchone()[0])
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    return pid
