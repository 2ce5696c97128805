"""The projections page: position, lag, why a projection stopped, and the
actions to retry it or to rebuild it (the projector daemon runs requested rebuilds)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from platform_core.models import ProjectionCheckpoint
from platform_core.runtime import runtime


@admin.register(ProjectionCheckpoint)
class ProjectionCheckpointAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "log_position",
        "lag",
        "state",
        "rebuild_status",
        "updated_at",
    )
    readonly_fields = (
        "name",
        "log_position",
        "last_event_at",
        "error",
        "failed_position",
        "failed_at",
        "retry_at",
        "rebuild_requested_at",
        "rebuild_status",
    )
    exclude = ("transaction_id", "position")
    actions = ("request_rebuild", "retry_now")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="position")
    def log_position(self, checkpoint: ProjectionCheckpoint) -> str:
        return f"{checkpoint.transaction_id}.{checkpoint.position}"

    @admin.display(description="lag")
    def lag(self, checkpoint: ProjectionCheckpoint) -> str:
        runner = runtime().projections
        if checkpoint.name not in runner.names:
            return "unknown projection"
        lag = runner.lag(checkpoint.name)
        return f"{lag.events:,} events, {lag.seconds:.1f} s"

    @admin.display(description="state")
    def state(self, checkpoint: ProjectionCheckpoint) -> str:
        if checkpoint.error:
            return f"stopped at {checkpoint.failed_position}: {checkpoint.error}"
        return "running"

    @admin.action(description="Rebuild selected projections (reads keep answering)")
    def request_rebuild(
        self, request: HttpRequest, queryset: QuerySet[ProjectionCheckpoint]
    ) -> None:
        pending = queryset.filter(rebuild_requested_at__isnull=True)
        names = list(pending.values_list("name", flat=True))
        pending.update(rebuild_requested_at=timezone.now(), rebuild_status="requested")
        self.message_user(
            request,
            f"rebuild requested for {', '.join(names) or 'nothing new'}; the projector runs it "
            "and shows its progress under 'rebuild status'",
            messages.SUCCESS,
        )

    @admin.action(description="Retry stopped projections now")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[ProjectionCheckpoint]) -> None:
        runner = runtime().projections
        for name in queryset.exclude(error="").values_list("name", flat=True):
            passed = runner.retry_now(name)
            level = messages.SUCCESS if passed else messages.WARNING
            self.message_user(request, f"{'Resumed' if passed else 'Failed again'}: {name}", level)
