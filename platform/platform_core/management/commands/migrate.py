"""Django's `migrate`, which without `--database` migrates every database in DATABASES
(each takes what the routers allow it), so a deployment with a second database (the
embedded default's gateway file) needs no second command. `--database X` does one."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.core.management.commands import migrate
from django.db import connections


class Command(migrate.Command):
    help = "Updates the schema of every database, or of the one --database names."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database=None)

    def get_check_kwargs(self, options: dict[str, Any]) -> Any:
        return {**super().get_check_kwargs(options), "databases": self._databases(options)}

    def handle(self, *args: Any, **options: Any) -> None:
        for database in self._databases(options):
            super().handle(*args, **{**options, "database": database})

    def _databases(self, options: dict[str, Any]) -> list[str]:
        return [options["database"]] if options["database"] else list(connections)
