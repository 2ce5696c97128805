"""Deleting what the messaging tables no longer need: outbox rows published long ago, inbox
records older than any redelivery, Idempotency-Key records past their time, and the
heartbeats of loop processes long replaced by newer ones.

Without it the three tables grow with every message and request for ever. The outbox's
published rows are kept `older_than` for inspection; the inbox's records are what makes a
consumer or a command idempotent, so a duplicate arriving after them would take effect
again: keep them longer than any broker holds or redelivers a message (Kafka's retention,
a Celery retry's longest wait). Unpublished outbox rows are never deleted, however old.
Each batch is its own transaction, so pruning never holds locks for long.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.utils import timezone

from platform_core.models import IdempotencyRecord, InboxMessage, LoopHeartbeat, OutboxMessage

DEFAULT_OLDER_THAN = timedelta(days=7)


@dataclass(frozen=True, kw_only=True)
class Prunable:
    """What `prune` deletes (or, with `dry_run`, would delete), table by table."""

    outbox: int
    inbox: int
    idempotency_keys: int
    loop_heartbeats: int


def prune(
    *,
    older_than: timedelta = DEFAULT_OLDER_THAN,
    batch_size: int = 5000,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> Prunable:
    """Delete published outbox rows and inbox records older than `older_than`, and
    Idempotency-Key records older than IDEMPOTENCY_TTL_SECONDS (a replay ignores them
    already). `progress(table, deleted so far)` after each batch."""
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = now or timezone.now()
    cutoff = now - older_than
    expired = now - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    chosen: dict[str, QuerySet[Model]] = {
        "outbox": OutboxMessage.objects.filter(published_at__lt=cutoff),
        "inbox": InboxMessage.objects.filter(processed_at__lt=cutoff),
        "idempotency_keys": IdempotencyRecord.objects.filter(created_at__lt=expired),
        "loop_heartbeats": _replaced_heartbeats(cutoff),
    }
    counts = {
        table: rows.count() if dry_run else _delete_in_batches(table, rows, batch_size, progress)
        for table, rows in chosen.items()
    }
    return Prunable(**counts)


def _replaced_heartbeats(cutoff: datetime) -> QuerySet[Model]:
    """Beats older than `cutoff` of a loop another process has beaten for since: a killed
    process's row. A loop's last row stays however old: it is what reports it stalled."""
    newer = LoopHeartbeat.objects.filter(loop=OuterRef("loop"), beat_at__gt=OuterRef("beat_at"))
    return LoopHeartbeat.objects.filter(Exists(newer), beat_at__lt=cutoff)


def _delete_in_batches(
    table: str,
    rows: QuerySet[Model],
    batch_size: int,
    progress: Callable[[str, int], None] | None,
) -> int:
    deleted = 0
    while True:
        keys = list(rows.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not keys:
            return deleted
        deleted += rows.model._default_manager.filter(pk__in=keys).delete()[0]
        if progress is not None:
            progress(table, deleted)
