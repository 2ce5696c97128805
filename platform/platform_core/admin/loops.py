"""The long-running loops' heartbeats, read-only: which process last made progress, and
why a failing one fails. A row of a process gone for good can be deleted."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from platform_core.admin.common import ReadOnlyAdmin
from platform_core.models import LoopHeartbeat


@admin.register(LoopHeartbeat)
class LoopHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("loop", "instance", "beat_at", "failing_since", "last_error")
    list_filter = ("loop",)
    ordering = ("loop", "-beat_at")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)
