"""Where each dead-letter source's messages go back to when retried."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import partial

from platform_core.commands import celery_commands
from platform_core.messaging import dead_letters
from platform_core.messaging.consumers import ConsumerGroup
from platform_core.models import DeadLetter
from platform_core.projections.projector import ProjectionRunner
from platform_core.runtime import runtime


def redelivery_paths(
    consumer_groups: Mapping[str, ConsumerGroup], projections: ProjectionRunner
) -> dict[str, dead_letters.Redeliver]:
    """The way back for each dead-letter source: consumer groups, Celery command queues,
    and projections (retrying one runs it again from the event it stopped at)."""
    return {
        **celery_commands.redelivery_paths(),
        **{group.source: group.redeliver for group in consumer_groups.values()},
        **{
            f"projection:{name}": partial(_retry_projection, projections, name)
            for name in projections.names
        },
    }


def retry_letters(letters: Iterable[DeadLetter]) -> Iterator[dead_letters.RetryResult]:
    """Retry each letter through its path in this process's runtime, going on past
    failures (`dead_letters.retry_each`): what the admin action and `manage.py
    dead_letters retry` run."""
    rt = runtime()
    yield from dead_letters.retry_each(
        letters, redelivery_paths(rt.consumer_groups, rt.projections)
    )


def _retry_projection(runner: ProjectionRunner, name: str, letter: DeadLetter) -> bool:
    return runner.retry_now(name)
