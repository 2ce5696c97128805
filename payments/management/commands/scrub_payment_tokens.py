"""Take the card tokens stored before the payment token vault out of the outbox, the
saga instances and the dead letters, and delete the vault's expired tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from payments.scrub import scrub
from payments.vault import TokenVault


class Command(BaseCommand):
    help = (
        "Remove stored card tokens outside the event log (outbox rows, saga instances, dead "
        "letters; a copy that may still be acted on gets a vault reference instead) and "
        "delete expired vault tokens. The event log's old tokens are upcast away on read. "
        "Safe to run again: a second run finds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count, change nothing")

    def handle(self, *args: Any, dry_run: bool, **_: Any) -> None:
        vault = TokenVault(ttl=timedelta(seconds=settings.PAYMENT_TOKEN_TTL_SECONDS))
        done = scrub(vault=vault, dry_run=dry_run)
        verb = "would scrub" if dry_run else "scrubbed"
        self.stdout.write(
            f"{verb}: {done.outbox} outbox row(s), {done.saga_instances} saga instance(s), "
            f"{done.dead_letters} dead letter(s) ({done.vaulted} still to be charged, "
            f"their token moved to the vault); {done.expired_tokens} expired vault token(s)"
        )
