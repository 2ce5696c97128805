"""Platform tables. The event store table itself is created by hand-written DDL
(migration 0001) because it needs database-specific columns and defaults."""

from __future__ import annotations

from django.db import models


class StoredEvent(models.Model):
    """The `event_store` table as the ORM sees it: for the admin and ad-hoc queries only.

    Writes go through the event store adapters; the real columns (xid8, identity) are
    created by migration 0001's DDL, the model only mirrors them."""

    position = models.BigIntegerField(primary_key=True)
    transaction_id = models.BigIntegerField()
    stream_id = models.TextField()
    stream_type = models.TextField()
    version = models.IntegerField()
    event_type = models.TextField()
    schema_version = models.IntegerField()
    data = models.JSONField()
    metadata = models.JSONField()
    recorded_at = models.DateTimeField()

    class Meta:
        db_table = "event_store"
        ordering = ("position",)

    def __str__(self) -> str:
        return f"{self.stream_id}@{self.version} {self.event_type}"


class SnapshotRecord(models.Model):
    stream_id = models.TextField(primary_key=True)
    version = models.IntegerField()
    schema = models.IntegerField()
    state = models.TextField()
    taken_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "snapshots"

    def __str__(self) -> str:
        return f"{self.stream_id}@{self.version}"


class ProjectionCheckpoint(models.Model):
    name = models.CharField(primary_key=True, max_length=100)
    transaction_id = models.BigIntegerField(default=0)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "projection_checkpoints"

    def __str__(self) -> str:
        return f"{self.name} at {self.transaction_id}.{self.position}"


class IdempotencyRecord(models.Model):
    """The first response to a request made with an `Idempotency-Key`, kept for replay."""

    owner = models.CharField(max_length=150)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    body = models.JSONField(null=True)
    location = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "idempotency_keys"
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key_uniq")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.owner}:{self.key}"
