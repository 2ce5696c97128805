"""Projection checkpoints: where each projection is in the log, and why it stopped.

Shared by the live projector and the rebuild, which both move a checkpoint under its row
lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.utils import timezone

from platform_core.eventsourcing.eventstore import LOG_START, LogPosition, RecordedEvent
from platform_core.messaging import dead_letters
from platform_core.models import DeadLetter, ProjectionCheckpoint
from platform_core.storage.backends import backend

MAX_RETRY_PAUSE = timedelta(seconds=60)
# What the projector and the rebuild write; the rebuild request fields belong to others.
_MOVED = [
    "transaction_id",
    "position",
    "last_event_at",
    "error",
    "failed_position",
    "failed_at",
    "retry_at",
    "updated_at",
]


class ProjectionFailed(Exception):
    """A handler raised: `before` are the batch's events that passed."""

    def __init__(self, name: str, recorded: RecordedEvent, before: Sequence[RecordedEvent]) -> None:
        super().__init__(
            f"projection {name} failed on {recorded.event_type} at {recorded.log_position}"
        )
        self.name, self.recorded, self.before = name, recorded, before


def locked_checkpoint(name: str) -> ProjectionCheckpoint:
    rows = ProjectionCheckpoint.objects.filter(name=name)
    found = backend().locked(rows, "name = %s FOR UPDATE", [name])
    if found:
        return found[0]
    checkpoint, _ = ProjectionCheckpoint.objects.select_for_update().get_or_create(name=name)
    return checkpoint


def position_of(checkpoint: ProjectionCheckpoint) -> LogPosition:
    return LogPosition(checkpoint.transaction_id, checkpoint.position)


def projected_to(name: str) -> LogPosition:
    """Where projection `name` has got to (LOG_START before its first batch)."""
    row = ProjectionCheckpoint.objects.filter(name=name).values_list("transaction_id", "position")
    found = row.first()
    return LogPosition(*found) if found else LOG_START


def advance(checkpoint: ProjectionCheckpoint, events: Sequence[RecordedEvent]) -> None:
    """Move the checkpoint past `events`; a successful batch clears a recorded failure."""
    if not events:
        return
    last = events[-1]
    checkpoint.transaction_id, checkpoint.position = last.log_position
    checkpoint.last_event_at = last.recorded_at
    _clear_failure(checkpoint)
    _save(checkpoint)


def waiting_to_retry(checkpoint: ProjectionCheckpoint) -> bool:
    """Stopped at a failed event and not yet due for another try."""
    return bool(checkpoint.error and checkpoint.retry_at and checkpoint.retry_at > timezone.now())


def mark_failed(checkpoint: ProjectionCheckpoint, recorded: RecordedEvent, error: Any) -> None:
    now = timezone.now()
    first_failed = checkpoint.failed_at if checkpoint.error else now
    pause = min(max(now - (first_failed or now), timedelta(seconds=1)), MAX_RETRY_PAUSE)
    checkpoint.error = f"{type(error).__name__}: {error}"
    checkpoint.failed_position = str(recorded.log_position)
    checkpoint.failed_at = first_failed
    checkpoint.retry_at = now + pause
    _save(checkpoint)


def dead_letter_of(failure: ProjectionFailed) -> dead_letters.Failure:
    recorded = failure.recorded
    return dead_letters.Failure(
        source=f"projection:{failure.name}",
        destination=failure.name,
        message_id=str(recorded.metadata.event_id),
        payload=bytes(recorded.data).decode(),
        headers={
            "event_type": recorded.event_type,
            "stream_id": recorded.stream_id,
            "position": str(recorded.log_position),
        },
        attempts=1,
    )


def resolve_dead_letter(checkpoint: ProjectionCheckpoint) -> None:
    DeadLetter.objects.filter(
        source=f"projection:{checkpoint.name}",
        status=DeadLetter.Status.PENDING,
        headers__position=checkpoint.failed_position,
    ).update(status=DeadLetter.Status.RETRIED, retried_at=timezone.now())


def reset_to(
    checkpoint: ProjectionCheckpoint, position: LogPosition, last: RecordedEvent | None
) -> None:
    """Set the checkpoint after a rebuild: at `position`, with any failure cleared."""
    checkpoint.transaction_id, checkpoint.position = position
    checkpoint.last_event_at = last.recorded_at if last else None
    _clear_failure(checkpoint)
    _save(checkpoint)


def _save(checkpoint: ProjectionCheckpoint) -> None:
    """Write the fields the projector and the rebuild move (`_MOVED`)."""
    backend().save_fields(checkpoint, _MOVED)


def _clear_failure(checkpoint: ProjectionCheckpoint) -> None:
    """The projection got past its failed event: forget the failure, settle its letter."""
    if not checkpoint.error:
        return
    resolve_dead_letter(checkpoint)
    checkpoint.error = checkpoint.failed_position = ""
    checkpoint.failed_at = checkpoint.retry_at = None
