"""Operator views: the event store (read-only), the outbox backlog, dead letters with
retry and purge, sagas, and projections (platform_core.operations.projection_admin). Staff only,
like all of the admin."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from platform_core.messaging import dead_letters
from platform_core.models import (
    DeadLetter,
    OutboxMessage,
    SagaInstance,
    SagaStepEntry,
    StoredEvent,
)
from platform_core.operations.projection_admin import ProjectionCheckpointAdmin
from platform_core.operations.redelivery import redelivery_paths
from platform_core.runtime import runtime
from platform_core.sagas.manager import SagaManager

__all__ = ["ProjectionCheckpointAdmin"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


@admin.register(StoredEvent)
class StoredEventAdmin(ReadOnlyAdmin):
    list_display = ("position", "stream_id", "version", "event_type", "recorded_at")
    # No list filters: their DISTINCT queries would scan the whole log on every page.
    search_fields = ("=stream_id", "=event_type")
    show_full_result_count = False
    fields = (
        "position",
        "stream_id",
        "stream_type",
        "version",
        "event_type",
        "schema_version",
        "recorded_at",
        "pretty_data",
        "pretty_metadata",
    )
    readonly_fields = fields

    @admin.display(description="data")
    def pretty_data(self, event: StoredEvent) -> str:
        return _pretty(event.data)

    @admin.display(description="metadata")
    def pretty_metadata(self, event: StoredEvent) -> str:
        return _pretty(event.metadata)


class PublishedFilter(admin.SimpleListFilter):
    title = "published"
    parameter_name = "published"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Backlog (not published)"), ("yes", "Published")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(published_at__isnull=self.value() == "no")
        return queryset


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "topic",
        "event_type",
        "message_key",
        "created_at",
        "published_at",
        "attempts",
        "last_error",
    )
    list_filter = (PublishedFilter, "topic", "event_type")
    search_fields = ("=message_key", "=message_id")
    show_full_result_count = False


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "source",
        "destination",
        "status",
        "attempts",
        "last_failed_at",
        "short_error",
    )
    list_filter = ("status", "source", "fingerprint")
    search_fields = ("=message_id", "error")
    actions = ("retry", "purge")
    readonly_fields = (
        "source",
        "destination",
        "message_id",
        "status",
        "attempts",
        "fingerprint",
        "first_failed_at",
        "last_failed_at",
        "retried_at",
        "pretty_headers",
        "payload",
        "error",
        "traceback_text",
    )
    exclude = ("headers", "traceback")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="error")
    def short_error(self, letter: DeadLetter) -> str:
        return letter.error[:100]

    @admin.display(description="headers")
    def pretty_headers(self, letter: DeadLetter) -> str:
        return _pretty(letter.headers)

    @admin.display(description="traceback")
    def traceback_text(self, letter: DeadLetter) -> str:
        return format_html("<pre>{}</pre>", letter.traceback)

    @admin.action(description="Retry through the original path")
    def retry(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        paths = redelivery_paths()
        retried = failed = 0
        for letter in queryset.filter(status=DeadLetter.Status.PENDING):
            try:
                ok = dead_letters.retry(letter, paths)
            except dead_letters.CannotRetry as error:
                self.message_user(request, str(error), messages.ERROR)
                return
            retried, failed = retried + ok, failed + (not ok)
        level = messages.SUCCESS if not failed else messages.WARNING
        self.message_user(request, f"{retried} retried, {failed} failed again", level)

    @admin.action(description="Purge (delete) selected dead letters")
    def purge(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        deleted, _ = queryset.delete()
        self.message_user(request, f"purged {deleted} dead letter(s)", messages.SUCCESS)


class SagaStepInline(admin.TabularInline):
    model = SagaStepEntry
    fields = ("at", "step", "kind", "message_id", "detail")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("at", "id")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StuckFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "stuck"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "stuck"), ("no", "not stuck")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(stuck_since__isnull=self.value() == "no")
        return queryset


@admin.register(SagaInstance)
class SagaInstanceAdmin(ReadOnlyAdmin):
    list_display = ("key", "saga", "status", "current_step", "stuck", "reason", "updated_at")
    list_filter = ("saga", "status", StuckFilter)
    search_fields = ("=key",)
    inlines = (SagaStepInline,)
    actions = ("retry_step", "compensate", "resolve")
    readonly_fields = (
        "id",
        "saga",
        "key",
        "status",
        "current_step",
        "stuck",
        "deadline_at",
        "resends",
        "step_started_at",
        "reason",
        "pretty_data",
        "created_at",
        "updated_at",
    )
    exclude = ("data", "step", "stuck_since")

    @admin.display(description="step")
    def current_step(self, instance: SagaInstance) -> str:
        steps = self._manager(instance).definition.steps
        return steps[instance.step].name if instance.step < len(steps) else str(instance.step)

    @admin.display(description="stuck", ordering="stuck_since")
    def stuck(self, instance: SagaInstance) -> str:
        if instance.stuck_since is None:
            return ""
        return f"since {instance.stuck_since:%Y-%m-%d %H:%M:%S}: {instance.data.get('_stuck', '')}"

    @admin.display(description="data")
    def pretty_data(self, instance: SagaInstance) -> str:
        return _pretty(instance.data)

    def _manager(self, instance: SagaInstance) -> SagaManager:
        return runtime().sagas[instance.saga]

    @admin.action(description="Retry the current step now (and refused compensations)")
    def retry_step(self, request: HttpRequest, queryset: QuerySet[SagaInstance]) -> None:
        self._each(
            request, queryset, lambda manager, instance: manager.retry_step(instance), "retried"
        )

    @admin.action(description="Compensate (undo what was done, cancel)")
    def compensate(self, request: HttpRequest, queryset: QuerySet[SagaInstance]) -> None:
        reason = f"compensated by {request.user.get_username()} from the admin"
        self._each(
            request,
            queryset,
            lambda manager, instance: manager.compensate(instance, reason),
            "compensating",
        )

    @admin.action(description="Mark stuck compensations resolved (after fixing them by hand)")
    def resolve(self, request: HttpRequest, queryset: QuerySet[SagaInstance]) -> None:
        note = f"resolved by {request.user.get_username()} from the admin"
        self._each(
            request,
            queryset,
            lambda manager, instance: manager.resolve(instance, note),
            "resolved",
        )

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[SagaInstance],
        act: Callable[[SagaManager, SagaInstance], bool],
        done: str,
    ) -> None:
        count = skipped = 0
        with transaction.atomic():
            # In key order, as the saga's consumer locks them: no deadlock between the two.
            for instance in queryset.select_for_update().order_by("key"):
                if act(self._manager(instance), instance):
                    count += 1
                else:
                    skipped += 1
        message = f"{count} saga(s) {done}" + (
            f"; {skipped} not in a state for it" if skipped else ""
        )
        self.message_user(request, message, messages.SUCCESS if not skipped else messages.WARNING)
