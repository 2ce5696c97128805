"""`SnapshotStore` on the Django database."""

from __future__ import annotations

from django.db import connection

from platform_core.eventsourcing.snapshots import Snapshot
from platform_core.models import SnapshotRecord
from platform_core.storage import pg

# Every command on a product's stock loads its snapshot first.
_PG_LOAD = "SELECT version, schema, state FROM snapshots WHERE stream_id = %s"


class DjangoSnapshotStore:
    def load(self, stream_id: str) -> Snapshot | None:
        if connection.vendor == "postgresql":
            found = pg.fetchall(_PG_LOAD, [stream_id])
            if not found:
                return None
            version, schema, state = found[0]
            return Snapshot(
                stream_id=stream_id, version=version, schema=schema, state=state.encode()
            )
        record = SnapshotRecord.objects.filter(stream_id=stream_id).first()
        if record is None:
            return None
        return Snapshot(
            stream_id=record.stream_id,
            version=record.version,
            schema=record.schema,
            state=record.state.encode(),
        )

    def save(self, snapshot: Snapshot) -> None:
        SnapshotRecord.objects.update_or_create(
            stream_id=snapshot.stream_id,
            defaults={
                "version": snapshot.version,
                "schema": snapshot.schema,
                "state": snapshot.state.decode(),
            },
        )
