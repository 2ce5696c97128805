"""Whether each long-running loop makes progress, from the beats it writes
(`storage.heartbeats`), for `/metrics` and `/readyz`.

A loop runs as one or more processes (a standby relay, two copies of a consumer); it is
stalled when none of them has finished a good round for LOOP_STALL_SECONDS: failing
round after round (a database it cannot reach, a broker that refuses), hung, or killed
without a replacement. A loop stopped on purpose removes its beat and is not reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from platform_core.models import LoopHeartbeat


@dataclass(frozen=True)
class LoopHealth:
    loop: str
    instances: int  # processes that made progress within LOOP_STALL_SECONDS
    seconds_since_progress: float
    stalled: bool
    failing_since: datetime | None
    last_error: str


def loop_health(now: datetime | None = None) -> list[LoopHealth]:
    """Each loop that has beaten, by name, judged by its freshest instance."""
    now = now or timezone.now()
    stall_after = settings.LOOP_STALL_SECONDS
    beats: dict[str, list[LoopHeartbeat]] = {}
    for row in LoopHeartbeat.objects.order_by("loop", "-beat_at"):
        beats.setdefault(row.loop, []).append(row)
    health = []
    for loop, rows in beats.items():
        freshest = rows[0]
        since = max((now - freshest.beat_at).total_seconds(), 0.0)
        health.append(
            LoopHealth(
                loop=loop,
                instances=sum((now - row.beat_at).total_seconds() <= stall_after for row in rows),
                seconds_since_progress=since,
                stalled=since > stall_after,
                failing_since=freshest.failing_since,
                last_error=freshest.last_error,
            )
        )
    return health
