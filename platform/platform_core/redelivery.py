"""Where each dead-letter source's messages go back to when retried."""

from __future__ import annotations

from platform_core import celery_commands, dead_letters
from platform_core.runtime import runtime


def redelivery_paths() -> dict[str, dead_letters.Redeliver]:
    """The way back for each dead-letter source: consumer groups and Celery command queues."""
    return {
        **celery_commands.redelivery_paths(),
        **{group.source: group.redeliver for group in runtime().consumer_groups.values()},
    }
