"""Inspect, retry and purge dead letters."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from celery import current_app  # type: ignore[import-untyped]
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from platform_core.commands.dead_letter_queues import drain_app
from platform_core.messaging import dead_letters
from platform_core.models import DeadLetter
from platform_core.operations.redelivery import retry_letters


class Command(BaseCommand):
    help = "Dead letters: list | show ID | retry ID | retry --all | purge | drain"

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help="pending dead letters, newest first")
        listing.add_argument("--source")
        listing.add_argument("--all-statuses", action="store_true")
        show = actions.add_parser("show", help="one dead letter with its traceback")
        show.add_argument("letter_id", type=int, metavar="ID")
        retry = actions.add_parser("retry", help="re-deliver through the original path")
        retry.add_argument("letter_id", type=int, nargs="?", metavar="ID")
        retry.add_argument(
            "--all", dest="every", action="store_true", help="every pending dead letter"
        )
        retry.add_argument("--source")
        retry.add_argument("--dry-run", action="store_true")
        purge = actions.add_parser("purge", help="delete dead letters")
        purge.add_argument("--older-than", type=int, metavar="DAYS", default=0)
        purge.add_argument("--source")
        actions.add_parser(
            "drain", help="move what RabbitMQ dead-lettered from the command queues in here"
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(**options)

    def _list(self, *, source: str | None, all_statuses: bool, **_: Any) -> None:
        letters = _filtered(source, pending_only=not all_statuses)
        self.stdout.write(f"{'ID':>6}  {'SOURCE':24} {'ATTEMPTS':>8}  {'LAST FAILURE':25} ERROR")
        for letter in letters[:500]:
            self.stdout.write(
                f"{letter.pk:>6}  {letter.source:24} {letter.attempts:>8}  "
                f"{letter.last_failed_at:%Y-%m-%d %H:%M:%S%z}  {letter.error[:80]}"
            )
        self.stdout.write(f"{letters.count()} dead letter(s)")

    def _show(self, *, letter_id: int, **_: Any) -> None:
        letter = _get(letter_id)
        for field in (
            "source",
            "destination",
            "message_id",
            "status",
            "attempts",
            "fingerprint",
            "first_failed_at",
            "last_failed_at",
            "headers",
            "payload",
            "error",
        ):
            self.stdout.write(f"{field}: {getattr(letter, field)}")
        self.stdout.write(letter.traceback)

    def _retry(
        self, *, letter_id: int | None, every: bool, source: str | None, dry_run: bool, **_: Any
    ) -> None:
        if (letter_id is None) == (not every):
            raise CommandError("give a dead letter ID or --all")
        letters = list(_filtered(source, pending_only=True)) if every else [_get(letter_id or 0)]
        if dry_run:
            for letter in letters:
                self.stdout.write(f"would retry {letter.pk} ({letter.source} {letter.message_id})")
            return
        tally: Counter[dead_letters.Outcome] = Counter()
        for result in retry_letters(letters):
            tally[result.outcome] += 1
            self.stdout.write(str(result))
        self.stdout.write(dead_letters.tally_line(tally))
        if not_retried := sum(tally.values()) - tally[dead_letters.Outcome.RETRIED]:
            raise CommandError(f"{not_retried} dead letter(s) not retried")

    def _purge(self, *, older_than: int, source: str | None, **_: Any) -> None:
        letters = _filtered(source, pending_only=False).filter(
            last_failed_at__lt=timezone.now() - timedelta(days=older_than)
        )
        deleted, _ = letters.delete()
        self.stdout.write(f"purged {deleted} dead letter(s)")

    def _drain(self, **_: Any) -> None:
        moved = drain_app(current_app._get_current_object())
        self.stdout.write(f"moved {moved} dead-lettered message(s) into the store")


def _filtered(source: str | None, *, pending_only: bool) -> QuerySet[DeadLetter]:
    letters = DeadLetter.objects.all()
    if pending_only:
        letters = letters.filter(status=DeadLetter.Status.PENDING)
    return letters.filter(source=source) if source else letters


def _get(letter_id: int) -> DeadLetter:
    letter = DeadLetter.objects.filter(pk=letter_id).first()
    if letter is None:
        raise CommandError(f"no dead letter {letter_id}")
    return letter
