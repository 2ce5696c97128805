"""The payment token vault: a card token kept under an opaque reference from the order's
transaction until its charge's, never handed out once expired."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import transaction

from config.celery import app
from payments.models import VaultedToken
from payments.vault import TokenVault, new_reference, prune_expired
from platform_core.tasks import MAINTENANCE_QUEUE

pytestmark = pytest.mark.django_db

ORDER = uuid.UUID("00000000-0000-4000-8000-000000000001")
TOKEN = "tok_visa_in_the_vault"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def vault(clock) -> TokenVault:
    numbers = itertools.count(1)
    return TokenVault(
        ttl=timedelta(minutes=30), clock=clock, references=lambda: f"pvr_{next(numbers)}"
    )


def test_a_token_is_handed_out_by_its_reference_until_it_is_discarded(vault):
    reference = vault.deposit(order_id=ORDER, token=TOKEN)

    assert reference == "pvr_1"
    assert vault.redeem(reference) == TOKEN
    vault.discard(reference)
    assert vault.redeem(reference) is None
    vault.discard(reference)  # forgetting twice is no error
    assert vault.redeem("pvr_never_given") is None


def test_a_reference_says_nothing_of_the_token_or_the_order():
    references = {new_reference() for _ in range(100)}

    assert len(references) == 100
    assert all(r.startswith("pvr_") and len(r) > 30 for r in references)
    assert not any(TOKEN in r or str(ORDER) in r for r in references)


def test_an_expired_token_is_never_handed_out_and_is_pruned(vault, clock):
    expiring = vault.deposit(order_id=ORDER, token=TOKEN)
    clock.now += timedelta(minutes=20)
    later = vault.deposit(order_id=ORDER, token="tok_visa_later")

    clock.now += timedelta(minutes=10)

    assert (vault.redeem(expiring), vault.redeem(later)) == (None, "tok_visa_later")
    assert prune_expired(now=clock.now, dry_run=True) == 1
    assert prune_expired(now=clock.now) == 1
    assert list(VaultedToken.objects.values_list("reference", flat=True)) == [later]


def test_celery_beat_prunes_the_vault_on_the_maintenance_queue(vault, clock):
    app.loader.import_default_modules()
    job = settings.CELERY_BEAT_SCHEDULE["prune-payment-tokens"]
    route = app.amqp.router.route({}, job["task"], task_type=app.tasks[job["task"]])
    clock.now = datetime(2000, 1, 1, tzinfo=UTC)  # long expired by any wall clock
    vault.deposit(order_id=ORDER, token=TOKEN)

    assert route["queue"].name == MAINTENANCE_QUEUE
    assert app.tasks[job["task"]].apply().get() == 1
    assert not VaultedToken.objects.exists()


def test_a_token_deposited_by_an_order_that_rolled_back_is_not_kept(vault):
    def place_refused_order() -> None:
        with transaction.atomic():
            vault.deposit(order_id=ORDER, token=TOKEN)
            raise RuntimeError("the order was refused")

    with pytest.raises(RuntimeError):
        place_refused_order()

    assert not VaultedToken.objects.exists()
