"""Delete old published outbox rows, old inbox records and expired Idempotency-Keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from platform_core.operations.retention import DEFAULT_OLDER_THAN, prune


class Command(BaseCommand):
    help = (
        "Delete outbox rows published and inbox records processed more than --older-than "
        "days ago, and Idempotency-Key records past IDEMPOTENCY_TTL_SECONDS. Run it daily "
        "(cron, a Kubernetes CronJob). Keep inbox records longer than any message can be "
        "redelivered: a duplicate arriving after its record is gone takes effect again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            default=DEFAULT_OLDER_THAN.days,
            help=f"days to keep (default {DEFAULT_OLDER_THAN.days})",
        )
        parser.add_argument("--batch-size", type=int, default=5000, help="rows a transaction")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args: Any, older_than: int, batch_size: int, dry_run: bool, **_: Any) -> None:
        if older_than < 1:
            raise CommandError("--older-than is a number of days, at least 1")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")

        def report(table: str, deleted: int) -> None:
            self.stdout.write(f"  {table}: {deleted} deleted so far")

        result = prune(
            older_than=timedelta(days=older_than),
            batch_size=batch_size,
            dry_run=dry_run,
            progress=report,
        )
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(
            f"{verb}: {result.outbox} published outbox row(s), {result.inbox} inbox "
            f"record(s), {result.idempotency_keys} expired Idempotency-Key record(s), "
            f"{result.loop_heartbeats} replaced loop heartbeat(s)"
        )
