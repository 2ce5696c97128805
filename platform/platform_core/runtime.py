"""The one accessor through which entry points (views, the admin, management commands)
reach the running collaborators; library code is given them instead.

The composition root named by the PLATFORM_RUNTIME setting builds the runtime on first
use, never at import time, so importing a view module has no side effects.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.utils.module_loading import import_string

from platform_core.eventsourcing.bus import CommandBus
from platform_core.eventsourcing.eventstore import EventStore
from platform_core.eventsourcing.serialization import EventCodec
from platform_core.messaging.consumers import ConsumerGroup
from platform_core.messaging.outbox import Outbox
from platform_core.messaging.relay import OutboxRelay
from platform_core.projections.projector import ProjectionRunner
from platform_core.sagas.manager import SagaManager


@dataclass(frozen=True, kw_only=True)
class Runtime:
    bus: CommandBus
    store: EventStore
    codec: EventCodec
    projections: ProjectionRunner
    outbox: Outbox
    relay: OutboxRelay
    consumer_groups: Mapping[str, ConsumerGroup]
    sagas: Mapping[str, SagaManager]
    kafka_config: Mapping[str, str]
    # Set after a commit that appended events / outbox rows; in-process workers wait on them.
    log_changed: threading.Event = field(default_factory=threading.Event)
    outbox_changed: threading.Event = field(default_factory=threading.Event)


_runtime: Runtime | None = None
_lock = threading.Lock()


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = import_string(settings.PLATFORM_RUNTIME)()
    return _runtime


def reset_runtime() -> None:
    """Forget the built runtime (tests that change settings call this)."""
    global _runtime
    with _lock:
        _runtime = None
