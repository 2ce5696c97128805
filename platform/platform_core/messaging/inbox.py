"""The inbox: which messages a consumer has processed, claimed in its transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from django.db import connection

from platform_core.storage import pg

# One prepared statement whatever the number of ids.
_PG_CLAIM = """
INSERT INTO inbox (consumer, message_id, processed_at)
SELECT %s, message_id, %s FROM unnest(%s::text[]) AS message_id
ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id
"""


def claim(consumer: str, message_ids: Sequence[str]) -> set[str]:
    """Insert inbox rows for `message_ids`; the ids that were not there before."""
    if not message_ids:
        return set()
    if connection.vendor == "postgresql":
        rows = pg.fetchall(_PG_CLAIM, (consumer, datetime.now(UTC), list(message_ids)))
        return {row[0] for row in rows}
    now = datetime.now(UTC).isoformat()
    values = ", ".join(["(%s, %s, %s)"] * len(message_ids))
    params: list[str] = []
    for message_id in message_ids:
        params += [consumer, message_id, now]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO inbox (consumer, message_id, processed_at) VALUES {values} "
            "ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id",
            params,
        )
        return {row[0] for row in cursor.fetchall()}
