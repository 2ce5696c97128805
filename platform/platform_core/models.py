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
    """Where a projection has got to in the global log, and why it stopped if it did."""

    name = models.CharField(primary_key=True, max_length=100)
    transaction_id = models.BigIntegerField(default=0)
    position = models.BigIntegerField(default=0)
    # When the last projected event was recorded: the lag in seconds is measured from it.
    last_event_at = models.DateTimeField(null=True, blank=True)
    # A projection that failed on an event stops there (order matters) until it passes.
    error = models.TextField(blank=True)
    failed_position = models.CharField(max_length=50, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    # An operator asked (in the admin) for a rebuild; the projector daemon runs it and
    # reports its progress here.
    rebuild_requested_at = models.DateTimeField(null=True, blank=True)
    rebuild_status = models.CharField(max_length=200, blank=True)
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


class OutboxMessage(models.Model):
    """An integration event waiting to be (or already) published, written in the same
    transaction as the domain events that caused it."""

    id = models.BigAutoField(primary_key=True)
    topic = models.CharField(max_length=255)
    message_key = models.CharField(max_length=255)
    message_id = models.UUIDField()
    event_type = models.CharField(max_length=255)
    source = models.CharField(max_length=255)
    subject = models.CharField(max_length=255, blank=True)
    occurred_at = models.DateTimeField()
    data = models.TextField()
    headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        db_table = "outbox"
        indexes = [
            models.Index(
                fields=["id"],
                name="outbox_unpublished_idx",
                condition=models.Q(published_at__isnull=True),
            ),
            models.Index(fields=["published_at"], name="outbox_published_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.message_id}"


class InboxMessage(models.Model):
    """A message a consumer has processed; written with the consumer's effects."""

    consumer = models.CharField(max_length=150)
    message_id = models.CharField(max_length=255)
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "inbox"
        constraints = [
            models.UniqueConstraint(
                fields=["consumer", "message_id"], name="inbox_consumer_msg_uniq"
            )
        ]
        indexes = [models.Index(fields=["processed_at"], name="inbox_processed_idx")]

    def __str__(self) -> str:
        return f"{self.consumer}:{self.message_id}"


class DeadLetter(models.Model):
    """A message that kept failing, kept with everything needed to retry it."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RETRIED = "retried"

    source = models.CharField(max_length=150, db_index=True)
    destination = models.CharField(max_length=255)
    message_id = models.CharField(max_length=255)
    payload = models.TextField()
    headers = models.JSONField(default=dict)
    error = models.TextField()
    traceback = models.TextField(blank=True)
    fingerprint = models.CharField(max_length=64, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    retried_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "dead_letters"
        ordering = ("-last_failed_at",)
        constraints = [
            models.UniqueConstraint(
                fields=["source", "message_id"], name="dead_letter_source_msg_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.message_id}: {self.error[:60]}"


class SagaInstance(models.Model):
    """One run of a saga (a long-running process across contexts) and where it stands.

    `status` is where the run is; `stuck_since` is whether a person should look: a step
    that keeps not answering, or a compensation its participant refused. A stuck
    instance goes on as before (re-sends, replies, cancels), and is no longer stuck as
    soon as it moves on."""

    class Status(models.TextChoices):
        RUNNING = "running"
        COMPENSATING = "compensating"
        COMPLETED = "completed"
        COMPENSATED = "compensated"

    id = models.UUIDField(primary_key=True)
    saga = models.CharField(max_length=100)
    key = models.CharField(max_length=255, help_text="the correlation key, e.g. the order id")
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.RUNNING)
    step = models.PositiveSmallIntegerField(default=0, help_text="index of the current step")
    data = models.JSONField(default=dict)
    deadline_at = models.DateTimeField(null=True, blank=True)
    resends = models.PositiveSmallIntegerField(default=0)
    step_started_at = models.DateTimeField(
        null=True, blank=True, help_text="when the current step's command was first sent"
    )
    stuck_since = models.DateTimeField(
        null=True, blank=True, help_text="set while the instance needs a person's attention"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "saga_instances"
        constraints = [models.UniqueConstraint(fields=["saga", "key"], name="saga_key_uniq")]
        indexes = [
            models.Index(
                fields=["deadline_at"],
                name="saga_deadline_idx",
                condition=models.Q(status__in=["running", "compensating"]),
            ),
            models.Index(fields=["saga", "status"], name="saga_status_idx"),
            models.Index(
                fields=["stuck_since"],
                name="saga_stuck_idx",
                condition=models.Q(stuck_since__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        stuck = ", stuck" if self.stuck else ""
        return f"{self.saga} {self.key} ({self.status}{stuck})"

    @property
    def stuck(self) -> bool:
        return self.stuck_since is not None


class SagaStepEntry(models.Model):
    """Append-only history of a saga instance: every command, reply, timeout and decision."""

    instance = models.ForeignKey(SagaInstance, on_delete=models.CASCADE, related_name="history")
    step = models.CharField(max_length=100)
    kind = models.CharField(max_length=30)
    message_id = models.CharField(max_length=255, blank=True)
    detail = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "saga_steps"
        ordering = ("at", "id")

    def __str__(self) -> str:
        return f"{self.step}: {self.kind}"


class LoopHeartbeat(models.Model):
    """When a long-running loop (projector, relay, consumer, saga timers) last finished a
    round, written by the loop itself (`storage.heartbeats`) and read by `/metrics` and
    `/readyz`: a loop whose beat grows old is stalled, whatever its lag says."""

    loop = models.CharField(max_length=150)
    instance = models.CharField(max_length=255, help_text="host:pid of the process")
    beat_at = models.DateTimeField(help_text="end of the last round that succeeded")
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="first failed round since the last that succeeded"
    )
    last_error = models.TextField(blank=True)

    class Meta:
        db_table = "loop_heartbeats"
        constraints = [
            models.UniqueConstraint(fields=["loop", "instance"], name="loop_heartbeat_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.loop} on {self.instance}"
