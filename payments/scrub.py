"""Removing the card tokens stored outside the event log before the payment token vault.

Until then the token travelled in the open: in `orders.order-placed.v1` messages (outbox
rows, dead letters), in the saga's data and in `ProcessPayment` command tasks (outbox
rows, dead letters). `scrub` takes it out of every such copy. A copy that may still be
acted on (an unpublished outbox row, a running saga, a pending dead letter) gets a
reference to the token, deposited in the vault, in its place, so the order is still
charged; any other copy gets no reference. The event log keeps its copies: they are
upcast on read (`orders.events.UPCASTERS`), so never served or sent again. Expired vault
tokens are deleted too. Running it again finds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
from django.db import models, transaction

from payments import tasks as payments_tasks
from payments.vault import TokenVault, prune_expired
from platform_core.models import DeadLetter, OutboxMessage, SagaInstance

EVENT_KEY, COMMAND_KEY = "payment_token", "token"  # as order-placed.v1 / ProcessPayment had it
CHARGE_TASK = payments_tasks.process_payment.name
REDACTED = "[payment token]"

# (document, whether it may still be acted on) -> the document without its token, or None
Rewrite = Callable[[dict[str, Any], bool], dict[str, Any] | None]


@dataclass(frozen=True, kw_only=True)
class Scrubbed:
    """What `scrub` changed (or, with `dry_run`, would change), table by table."""

    outbox: int
    saga_instances: int
    dead_letters: int
    expired_tokens: int
    # Tokens moved to the vault for the copies that may still be acted on.
    vaulted: int


class _Scrubber:
    def __init__(self, vault: TokenVault, dry_run: bool) -> None:
        self._vault, self._dry_run, self.vaulted = vault, dry_run, 0

    def rewrite(self, key: str) -> Rewrite:
        """Take the token under `key` out; a reference in its place when still needed."""

        def rewritten(document: dict[str, Any], live: bool) -> dict[str, Any] | None:
            if not isinstance(document, dict) or key not in document:
                return None
            token = str(document[key] or "")
            rest = {name: value for name, value in document.items() if name != key}
            return {**rest, "payment_ref": self._reference(rest, token) if live else ""}

        return rewritten

    def _reference(self, document: dict[str, Any], token: str) -> str:
        try:
            order_id = UUID(str(document.get("order_id")))
        except ValueError:
            return ""
        if not token:
            return ""
        self.vaulted += 1
        return "" if self._dry_run else self._vault.deposit(order_id=order_id, token=token)

    def rows(
        self, rows: Iterable[Any], field: str, live: Callable[[Any], bool], rewrite: Rewrite
    ) -> int:
        """Rewrite the JSON in each row's `field`; how many rows held a token."""
        changed = 0
        for row in rows:
            value = getattr(row, field)
            try:
                document = msgspec.json.decode(value) if isinstance(value, str) else value
            except msgspec.DecodeError:
                continue  # not a message this context ever sent
            scrubbed = rewrite(document, live(row))
            if scrubbed is None:
                continue
            changed += 1
            if not self._dry_run:
                token = str(document.get(EVENT_KEY) or document.get(COMMAND_KEY) or "")
                self._save(row, field, scrubbed, token)
        return changed

    def _save(self, row: Any, field: str, scrubbed: dict[str, Any], token: str) -> None:
        text = msgspec.json.encode(scrubbed).decode()
        setattr(row, field, text if isinstance(getattr(row, field), str) else scrubbed)
        updated = [field]
        if isinstance(row, DeadLetter) and token:
            row.error = row.error.replace(token, REDACTED)
            row.traceback = row.traceback.replace(token, REDACTED)
            updated += ["error", "traceback"]
        row.save(update_fields=updated)


def scrub(*, vault: TokenVault, dry_run: bool = False) -> Scrubbed:
    """Take every card token out of the outbox, the saga instances and the dead letters,
    and delete the expired tokens of the vault (see the module docstring)."""
    scrubber = _Scrubber(vault, dry_run)
    events, commands = scrubber.rewrite(EVENT_KEY), scrubber.rewrite(COMMAND_KEY)
    with transaction.atomic():
        outbox = _outbox(scrubber, events, commands)
        sagas = scrubber.rows(
            SagaInstance.objects.filter(data__has_key=EVENT_KEY),
            "data",
            _running,
            events,
        )
        letters = _dead_letters(scrubber, events, commands)
        expired = prune_expired(dry_run=dry_run)
    return Scrubbed(
        outbox=outbox,
        saga_instances=sagas,
        dead_letters=letters,
        expired_tokens=expired,
        vaulted=scrubber.vaulted,
    )


def _outbox(scrubber: _Scrubber, events: Rewrite, commands: Rewrite) -> int:
    rows = OutboxMessage.objects.order_by("id")
    charges = models.Q(event_type=CHARGE_TASK)
    return scrubber.rows(
        rows.filter(data__contains=f'"{EVENT_KEY}"').exclude(charges), "data", _unsent, events
    ) + scrubber.rows(
        rows.filter(charges, data__contains=f'"{COMMAND_KEY}"'), "data", _unsent, commands
    )


def _dead_letters(scrubber: _Scrubber, events: Rewrite, commands: Rewrite) -> int:
    rows = DeadLetter.objects.exclude(headers__has_key="payload_encoding").order_by("id")
    charges = models.Q(destination=CHARGE_TASK)
    return scrubber.rows(
        rows.filter(payload__contains=f'"{EVENT_KEY}"').exclude(charges),
        "payload",
        _pending,
        events,
    ) + scrubber.rows(
        rows.filter(charges, payload__contains=f'"{COMMAND_KEY}"'), "payload", _pending, commands
    )


def _unsent(row: OutboxMessage) -> bool:
    return row.published_at is None


def _running(row: SagaInstance) -> bool:
    return row.status == SagaInstance.Status.RUNNING


def _pending(row: DeadLetter) -> bool:
    return row.status == DeadLetter.Status.PENDING
