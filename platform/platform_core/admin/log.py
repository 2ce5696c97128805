"""The event store and the outbox backlog, read-only."""

from __future__ import annotations

from typing import Any

import msgspec
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from platform_core.admin.common import ReadOnlyAdmin, pretty
from platform_core.models import OutboxMessage, StoredEvent
from platform_core.runtime import runtime


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

    @admin.display(description="data (upcast to the current schema)")
    def pretty_data(self, event: StoredEvent) -> str:
        # Upcast: what an upcaster drops (an old card token) is never shown.
        stored = msgspec.json.encode(event.data)
        _, data = runtime().codec.upcast(event.event_type, event.schema_version, stored)
        return pretty(msgspec.json.decode(data))

    @admin.display(description="metadata")
    def pretty_metadata(self, event: StoredEvent) -> str:
        return pretty(event.metadata)


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
