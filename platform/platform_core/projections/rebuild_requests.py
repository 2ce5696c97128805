"""Rebuilds that operators request from the admin, run by the projector daemon.

Each runs in a thread of its own, so the live projections keep following the log
meanwhile, and reports its progress on the checkpoint row (`rebuild_status`).
"""

from __future__ import annotations

import logging
import math
import threading
import time

from django.db import connections

from platform_core.models import ProjectionCheckpoint
from platform_core.projections.projector import ProjectionRunner
from platform_core.projections.rebuild import ProjectionRebuild

logger = logging.getLogger(__name__)
_REPORT_EVERY_SECONDS = 1.0
# How often the projector daemon looks for rebuilds requested in the admin.
CHECK_EVERY_SECONDS = 1.0


class RebuildRequests:
    """`check_every` seconds at most between two looks for requests: the projector asks
    after every catch-up, many times a second under load, and a request can wait that long."""

    def __init__(self, runner: ProjectionRunner, *, check_every: float = 0.0) -> None:
        self._runner = runner
        self._running: dict[str, threading.Thread] = {}
        self._check_every = check_every
        self._checked = -math.inf

    def start_requested(self) -> list[str]:
        """Start a thread for each requested rebuild not already running; their names."""
        now = time.monotonic()
        if now - self._checked < self._check_every:
            return []
        self._checked = now
        requested = ProjectionCheckpoint.objects.filter(
            rebuild_requested_at__isnull=False, name__in=self._runner.names
        ).values_list("name", flat=True)
        started = []
        for name in requested:
            if name in self._running and self._running[name].is_alive():
                continue
            thread = threading.Thread(
                target=self.run, args=(name,), name=f"rebuild-{name}", daemon=True
            )
            self._running[name] = thread
            thread.start()
            started.append(name)
        return started

    def run(self, name: str) -> None:
        """Rebuild `name` now, reporting progress; clears the request when done."""
        status = "interrupted"
        try:
            report = ProjectionRebuild(self._runner, name, progress=_Reporter(name)).run()
            status = f"done: {report.events:,} events in {report.seconds:.1f} s"
        except Exception as error:
            logger.exception("rebuild of %s failed", name)
            status = f"failed: {type(error).__name__}: {error}"
        finally:
            ProjectionCheckpoint.objects.filter(name=name).update(
                rebuild_requested_at=None, rebuild_status=status[:200]
            )
            connections.close_all()


class _Reporter:
    """Writes 'done / total (rate, time left)' to the checkpoint about once a second."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._total = ProjectionRebuild.estimated_events()
        self._done = 0
        self._started = self._reported = time.monotonic()

    def __call__(self, events: int) -> None:
        self._done += events
        now = time.monotonic()
        if now - self._reported < _REPORT_EVERY_SECONDS:
            return
        self._reported = now
        rate = self._done / max(now - self._started, 1e-9)
        left = max(self._total - self._done, 0) / rate if rate else 0.0
        ProjectionCheckpoint.objects.filter(name=self._name).update(
            rebuild_status=f"running: {self._done:,} / ~{self._total:,} events "
            f"({rate:,.0f}/s, ~{left:.0f} s left)"
        )
