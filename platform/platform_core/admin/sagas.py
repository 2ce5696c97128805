"""Saga instances and their step history, with the operator's repairs: retry, compensate,
resolve."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from platform_core.admin.common import ReadOnlyAdmin, pretty
from platform_core.models import SagaInstance, SagaStepEntry
from platform_core.runtime import runtime
from platform_core.sagas.manager import SagaManager


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
        return pretty(instance.data)

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
