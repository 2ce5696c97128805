"""Whether a failure was the database being out of reach, rather than the work itself.

A message that fails while the database is down is not poison: counting such failures
towards its attempts would dead-letter good messages during any outage longer than the
retries (a consumer's five attempts last about a second). After a failure, the caller
drops a broken connection and asks whether a fresh one can be opened; if not, it waits
and tries again without counting the attempt.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections


def database_reachable(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Drop the connection if a failure left it unusable, then whether one opens."""
    close_old_connections()
    try:
        connections[using].ensure_connection()
    except Exception:
        return False
    return True
