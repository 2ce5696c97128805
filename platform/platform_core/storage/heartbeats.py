"""What a long-running loop says of itself: the end of its last good round.

A loop (the projector, the outbox relay, a consumer group, the saga timers) calls
`beat()` after each round that succeeded and `failed(error)` after each that did not.
The row in `loop_heartbeats` is written at most every `every` seconds, and at once when a
failing loop recovers, so an idle loop polling every second costs one small write every
few seconds. `/metrics` and `/readyz` (`operations.loops`) read the rows: a loop whose
beat is older than LOOP_STALL_SECONDS makes no progress, whether it is failing round
after round, hung, or gone; a lag alone cannot tell an idle loop from a stuck one.

Writing the beat never fails the loop: when the database is what is failing, the beat
simply stops, which is the signal.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime

from django.db import close_old_connections
from django.utils import timezone

from platform_core.models import LoopHeartbeat

logger = logging.getLogger(__name__)

BEAT_EVERY_SECONDS = 5.0


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    def __init__(
        self,
        loop: str,
        *,
        instance: str | None = None,
        every: float = BEAT_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = timezone.now,
    ) -> None:
        self.loop = loop
        self.instance = instance or this_process()
        self._every = every
        self._clock = clock
        self._now = now
        self._written_at: float | None = None
        self._failing_since: datetime | None = None

    def beat(self) -> None:
        """A round succeeded."""
        recovered = self._failing_since is not None
        self._failing_since = None
        if recovered or self._due():
            self._write(beat_at=self._now(), failing_since=None, last_error="")

    def failed(self, error: BaseException) -> None:
        """A round failed; the beat keeps its time, the row says since when and why."""
        first = self._failing_since is None
        if first:
            self._failing_since = self._now()
        if first or self._due():
            self._write(failing_since=self._failing_since, last_error=_described(error))

    def stop(self) -> None:
        """The loop ends on purpose. Its row stays: a loop nobody runs any more makes no
        progress either, and a replacement that cannot start must not make the loop vanish
        from the metrics. Another process of the loop beating keeps it healthy; the rows
        of processes long replaced are pruned."""

    def _due(self) -> bool:
        return self._written_at is None or self._clock() - self._written_at >= self._every

    def _write(self, **fields: object) -> None:
        self._written_at = self._clock()
        try:
            updated = LoopHeartbeat.objects.filter(loop=self.loop, instance=self.instance).update(
                **fields
            )
            if not updated:
                LoopHeartbeat.objects.create(
                    loop=self.loop,
                    instance=self.instance,
                    **{"beat_at": self._now(), **fields},
                )
        except Exception:  # the database is down or the row raced: the next beat tries again
            logger.debug("heartbeat of %s not written", self.loop, exc_info=True)
            # An idle loop's only query may be this one: a connection killed under it must
            # not stay broken until the loop has work (the beat would stop, a false stall).
            close_old_connections()


def _described(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


class _Silent(Heartbeat):
    """For a loop run where nobody watches (a test, a one-off catch-up)."""

    def __init__(self) -> None:
        super().__init__("silent", instance="-")

    def beat(self) -> None:
        pass

    def failed(self, error: BaseException) -> None:
        pass

    def stop(self) -> None:
        pass


SILENT: Heartbeat = _Silent()
