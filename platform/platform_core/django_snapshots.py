"""`SnapshotStore` on the Django database."""

from __future__ import annotations

from platform_core.models import SnapshotRecord
from platform_core.snapshots import Snapshot


class DjangoSnapshotStore:
    def load(self, stream_id: str) -> Snapshot | None:
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
