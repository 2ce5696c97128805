"""`manage.py prune_messages` (`platform_core.operations.retention`): published outbox rows
and inbox records past their days go, expired Idempotency-Keys go, heartbeats of replaced
loop processes go, nothing else does."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from uuid import uuid4

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from config.celery import app
from platform_core.messaging.inbox import claim
from platform_core.models import IdempotencyRecord, InboxMessage, LoopHeartbeat, OutboxMessage
from platform_core.operations.retention import prune
from platform_core.tasks import MAINTENANCE_QUEUE, prune_messages

pytestmark = pytest.mark.django_db(transaction=True)

DAY = timedelta(days=1)


def _outbox_row(*, created_days_ago: float, published_days_ago: float | None) -> int:
    now = timezone.now()
    row = OutboxMessage.objects.create(
        topic="tests.events.v1", message_key="k", message_id=uuid4(), event_type="t",
        source="/tests", occurred_at=now, data="{}",
        published_at=None if published_days_ago is None else now - published_days_ago * DAY,
    )  # fmt: skip
    # auto_now_add ignores a given value: set the creation time afterwards.
    OutboxMessage.objects.filter(pk=row.pk).update(created_at=now - created_days_ago * DAY)
    return row.pk


def _inbox_record(consumer: str, days_ago: float) -> str:
    message_id = str(uuid4())
    assert claim(consumer, [message_id]) == {message_id}
    InboxMessage.objects.filter(message_id=message_id).update(
        processed_at=timezone.now() - days_ago * DAY
    )
    return message_id


def _key(key: str, days_ago: float) -> None:
    IdempotencyRecord.objects.create(owner="1", key=key, fingerprint="f", status_code=202)
    IdempotencyRecord.objects.filter(key=key).update(created_at=timezone.now() - days_ago * DAY)


def _beat(loop: str, instance: str, days_ago: float) -> None:
    LoopHeartbeat.objects.create(
        loop=loop, instance=instance, beat_at=timezone.now() - days_ago * DAY
    )


@pytest.fixture
def history() -> dict[str, object]:
    return {
        "old_published": _outbox_row(created_days_ago=9, published_days_ago=8),
        "old_unpublished": _outbox_row(created_days_ago=30, published_days_ago=None),
        "recently_published": _outbox_row(created_days_ago=9, published_days_ago=6),
        "old_claim": _inbox_record("orders", 8),
        "recent_claim": _inbox_record("orders", 6),
        "keys": [_key("expired", 1.5), _key("live", 0.5)],
        "beats": [
            _beat("relay", "host:1", 9),  # killed; host:2 took over
            _beat("relay", "host:2", 0),
            _beat("projector", "host:3", 9),  # the projector's only row: it is stalled
        ],
    }


def test_prune_deletes_only_what_is_past_its_time(history: dict[str, object]) -> None:
    pruned = prune(older_than=timedelta(days=7), batch_size=1)

    assert (pruned.outbox, pruned.inbox, pruned.idempotency_keys) == (1, 1, 1)
    assert pruned.loop_heartbeats == 1
    assert set(LoopHeartbeat.objects.values_list("loop", "instance")) == {
        ("relay", "host:2"),
        ("projector", "host:3"),
    }, "a loop's freshest row stays however old"
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {
        history["old_unpublished"],
        history["recently_published"],
    }, "never an unpublished row, however old"
    assert list(InboxMessage.objects.values_list("message_id", flat=True)) == [
        history["recent_claim"]
    ]
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["live"]


def test_a_pruned_inbox_record_no_longer_stops_a_duplicate(history: dict[str, object]) -> None:
    """The trade-off the retention makes, and why it must outlast any redelivery."""
    old, recent = str(history["old_claim"]), str(history["recent_claim"])
    prune(older_than=timedelta(days=7))

    assert claim("orders", [old, recent]) == {old}


def test_the_command_deletes_in_batches_and_says_what_it_deleted(
    history: dict[str, object],
) -> None:
    for n in range(3):
        _outbox_row(created_days_ago=40, published_days_ago=31 + n)
    out = StringIO()

    call_command("prune_messages", "--older-than", "30", "--batch-size", "2", stdout=out)

    assert out.getvalue().splitlines() == [
        "  outbox: 2 deleted so far",
        "  outbox: 3 deleted so far",
        "  idempotency_keys: 1 deleted so far",
        "deleted: 3 published outbox row(s), 0 inbox record(s), "
        "1 expired Idempotency-Key record(s), 0 replaced loop heartbeat(s)",
    ]
    assert OutboxMessage.objects.count() == 3


def test_a_dry_run_counts_and_deletes_nothing(history: dict[str, object]) -> None:
    out = StringIO()

    call_command("prune_messages", "--dry-run", stdout=out)

    assert out.getvalue().strip() == (
        "would delete: 1 published outbox row(s), 1 inbox record(s), "
        "1 expired Idempotency-Key record(s), 1 replaced loop heartbeat(s)"
    )
    assert (OutboxMessage.objects.count(), InboxMessage.objects.count()) == (3, 2)
    assert IdempotencyRecord.objects.count() == 2


@pytest.mark.parametrize(("argument", "value"), [("--older-than", "0"), ("--batch-size", "0")])
def test_nonsense_arguments_are_refused_and_nothing_is_deleted(
    history: dict[str, object], argument: str, value: str
) -> None:
    with pytest.raises(CommandError):
        call_command("prune_messages", argument, value, stdout=StringIO())

    assert OutboxMessage.objects.count() == 3


def test_celery_beat_prunes_daily_on_the_queue_the_worker_consumes():
    app.loader.import_default_modules()
    job = settings.CELERY_BEAT_SCHEDULE["prune-messages"]

    assert job["task"] in app.tasks
    route = app.amqp.router.route({}, job["task"], task_type=app.tasks[job["task"]])
    assert route["queue"].name == MAINTENANCE_QUEUE
    assert MAINTENANCE_QUEUE in {queue.name for queue in app.conf.task_queues}
    assert job["schedule"] == 24 * 60 * 60


def test_the_beat_task_prunes_as_the_command_does():
    old = _outbox_row(created_days_ago=30, published_days_ago=30)
    recent = _outbox_row(created_days_ago=1, published_days_ago=1)
    waiting = _outbox_row(created_days_ago=30, published_days_ago=None)

    deleted = prune_messages.apply().get()

    assert deleted["outbox"] == 1
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {recent, waiting}
    assert old not in set(OutboxMessage.objects.values_list("pk", flat=True))
