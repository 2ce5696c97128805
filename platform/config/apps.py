"""The project as an installed app: it wires the platform's entry points at start-up."""

from __future__ import annotations

from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "config"
    label = "config"

    def ready(self) -> None:
        from platform_core.commands import celery_commands
        from platform_core.runtime import runtime

        # Celery builds command tasks itself: they get the bus and outbox from here.
        celery_commands.provide(runtime)
