"""Dead letters: inspect, retry through the original path, purge."""

from __future__ import annotations

from collections import Counter

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from platform_core.admin.common import pretty
from platform_core.messaging import dead_letters
from platform_core.models import DeadLetter
from platform_core.operations.redelivery import retry_letters


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
        return pretty(letter.headers)

    @admin.display(description="traceback")
    def traceback_text(self, letter: DeadLetter) -> str:
        return format_html("<pre>{}</pre>", letter.traceback)

    @admin.action(description="Retry through the original path")
    def retry(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        tally: Counter[dead_letters.Outcome] = Counter()
        for result in retry_letters(queryset.filter(status=DeadLetter.Status.PENDING)):
            tally[result.outcome] += 1
            if result.outcome is not dead_letters.Outcome.RETRIED:
                self.message_user(request, str(result), messages.ERROR)
        all_retried = tally[dead_letters.Outcome.RETRIED] == sum(tally.values())
        level = messages.SUCCESS if all_retried else messages.WARNING
        self.message_user(request, dead_letters.tally_line(tally), level)

    @admin.action(description="Purge (delete) selected dead letters")
    def purge(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        deleted, _ = queryset.delete()
        self.message_user(request, f"purged {deleted} dead letter(s)", messages.SUCCESS)
