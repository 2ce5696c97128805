"""The payment token vault (table `payment_token_vault`): a card token waits here, for a
short while, between the order that takes it and the charge that uses it.

Only the opaque reference `deposit` answers travels: in the order's events, the saga's
data, the charge command and every message. The payments context `redeem`s it to charge
and `discard`s it in the same transaction as it records the charge's outcome, so a charge
that rolls back (the gateway unavailable, a worker killed) finds the token again when it
is retried, and one that committed leaves nothing behind. A token no charge used (the
order was cancelled before its payment) expires after `ttl` and is deleted by
`prune_expired` (a Celery beat job, and `manage.py scrub_payment_tokens`); an expired
token is never handed out.

`InMemoryTokenVault` keeps the same rules in a dict, for unit tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.utils import timezone

from payments.models import VaultedToken
from platform_core.eventsourcing.aggregate import Clock, utc_now

DEFAULT_TTL = timedelta(hours=1)


def new_reference() -> str:
    """An opaque reference: random, so that it says nothing of the token or the order."""
    return f"pvr_{secrets.token_urlsafe(24)}"


class _Vault:
    """A token is kept `ttl` from its deposit by `clock`, under a reference that
    `references` makes up."""

    def __init__(
        self,
        *,
        ttl: timedelta = DEFAULT_TTL,
        clock: Clock = utc_now,
        references: Callable[[], str] = new_reference,
    ) -> None:
        self._ttl, self._clock, self._references = ttl, clock, references


class TokenVault(_Vault):
    """The vault in the `payment_token_vault` table, written in the caller's transaction."""

    def deposit(self, *, order_id: UUID, token: str) -> str:
        now = self._clock()
        row = VaultedToken.objects.create(
            reference=self._references(),
            order_id=order_id,
            token=token,
            created_at=now,
            expires_at=now + self._ttl,
        )
        return row.reference

    def redeem(self, reference: str) -> str | None:
        live = VaultedToken.objects.filter(reference=reference, expires_at__gt=self._clock())
        token: str | None = live.values_list("token", flat=True).first()
        return token

    def discard(self, reference: str) -> None:
        VaultedToken.objects.filter(reference=reference).delete()


def prune_expired(*, now: datetime | None = None, dry_run: bool = False) -> int:
    """Delete the tokens past their expiry (with `dry_run`, count them); how many."""
    expired = VaultedToken.objects.filter(expires_at__lte=now or timezone.now())
    return expired.count() if dry_run else expired.delete()[0]


@dataclass(frozen=True)
class _Kept:
    token: str
    expires_at: datetime


class InMemoryTokenVault(_Vault):
    """The vault in a dict (one process, no database, no transactions)."""

    def __init__(self, **rules: Any) -> None:
        super().__init__(**rules)
        self.kept: dict[str, _Kept] = {}

    def deposit(self, *, order_id: UUID, token: str) -> str:
        reference = self._references()
        self.kept[reference] = _Kept(token, self._clock() + self._ttl)
        return reference

    def redeem(self, reference: str) -> str | None:
        kept = self.kept.get(reference)
        return kept.token if kept is not None and kept.expires_at > self._clock() else None

    def discard(self, reference: str) -> None:
        self.kept.pop(reference, None)
