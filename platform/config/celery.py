"""The project's Celery app: `celery -A config.celery:app worker -Q orders,inventory`.

Configured from Django's settings (`CELERY_*`) over the platform's defaults: a durable
queue per bounded context with a dead-letter queue, late acks, one message prefetched
per worker process. With `CELERY_BROKER_URL` unset (`memory://`) tasks run eagerly in
the sending process, so the embedded default needs no broker.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery  # type: ignore[import-untyped]
from django.conf import settings

from platform_core.commands.celery_queues import DeclareDeadLetterQueues, celery_settings

# As in Celery's Django guide: the worker reads Django's settings to configure the app.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

CONTEXT_QUEUES = ("orders", "inventory", "payments", "shipping")
# The platform's own periodic jobs (platform_core.tasks), scheduled by Celery beat.
QUEUES = (*CONTEXT_QUEUES, "maintenance")


def platform_defaults() -> dict[str, Any]:
    """The platform's settings less those Django's settings give (Celery would rank
    added defaults above the configuration source)."""
    broker_url = getattr(settings, "CELERY_BROKER_URL", "") or "memory://"
    defaults = celery_settings(queues=QUEUES, broker_url=broker_url)
    return {k: v for k, v in defaults.items() if not hasattr(settings, f"CELERY_{k.upper()}")}


app = Celery("fulfillment", task_cls="platform_core.commands.celery_queues:PlatformTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.add_defaults(platform_defaults)  # read lazily, when the app is first configured
app.steps["consumer"].add(DeclareDeadLetterQueues)
app.autodiscover_tasks()  # each installed app's `tasks` module, once the worker starts
