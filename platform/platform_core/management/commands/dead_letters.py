"""Inspect, retry and purge dead letters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from platform_core.messaging import dead_letters
from platform_core.models import DeadLetter
from platform_core.operations.redelivery import redelivery_paths
from platform_core.runtime import runtime


class Command(BaseCommand):
    help = "Dead letters: list | show ID | retry ID | retry --all | purge"

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
        rt = runtime()
        paths = redelivery_paths(rt.consumer_groups, rt.projections)
        done = failed = refused = 0
        for letter in letters:
            if dry_run:
                self.stdout.write(f"would retry {letter.pk} ({letter.source} {letter.message_id})")
                continue
            try:
                ok = dead_letters.retry(letter, paths)
            except dead_letters.CannotRetry as error:
                if not every:
                    raise CommandError(str(error)) from error
                refused += 1
                self.stdout.write(f"cannot retry {letter.pk}: {error}")
                continue
            done, failed = done + ok, failed + (not ok)
            self.stdout.write(f"{'retried' if ok else 'failed again'}: {letter.pk}")
        if not dry_run:
            self.stdout.write(f"{done} retried, {failed} failed again, {refused} cannot be retried")

    def _purge(self, *, older_than: int, source: str | None, **_: Any) -> None:
        letters = _filtered(source, pending_only=False).filter(
            last_failed_at__lt=timezone.now() - timedelta(days=older_than)
        )
        deleted, _ = letters.delete()
        self.stdout.write(f"purged {deleted} dead letter(s)")


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
