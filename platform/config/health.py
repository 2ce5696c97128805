"""Liveness and readiness probes."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse

from platform_core.operations.loops import loop_health


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """The web process can reach its database (503 when not). The body also names each
    background loop and whether it makes progress: a stalled loop makes the platform
    `degraded`, still 200, since taking the web out of service would not mend the loop
    (alert on `loop_stalled` in /metrics). The errors themselves stay in the
    `loop_heartbeats` table and the loops' logs: this probe answers anyone."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        loops = loop_health()
    except Exception as error:  # any failure means not ready
        return JsonResponse({"status": "unavailable", "error": type(error).__name__}, status=503)
    stalled = any(health.stalled for health in loops)
    return JsonResponse(
        {
            "status": "degraded" if stalled else "ok",
            "loops": {
                health.loop: {
                    "stalled": health.stalled,
                    "seconds_since_progress": round(health.seconds_since_progress, 1),
                    "instances": health.instances,
                    "failing": health.failing_since is not None,
                }
                for health in loops
            },
        }
    )
