"""`manage.py scrub_payment_tokens`: the card tokens stored before the vault go from the
outbox, the saga instances and the dead letters; a copy still to be acted on keeps a
vault reference so its order is still charged."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from payments import tasks as payments_tasks
from payments.models import VaultedToken
from payments.vault import TokenVault
from platform_core.messaging import dead_letters
from platform_core.models import DeadLetter, OutboxMessage, SagaInstance

pytestmark = pytest.mark.django_db

CHARGE_TASK = payments_tasks.process_payment.name


def token(n: int) -> str:
    return f"tok_visa_scrub_{n}"


def outbox_row(event_type: str, data: dict, *, published: bool) -> OutboxMessage:
    return OutboxMessage.objects.create(
        topic="orders.events.v1",
        message_key=str(data["order_id"]),
        message_id=uuid.uuid4(),
        event_type=event_type,
        source="/orders",
        occurred_at=timezone.now(),
        data=json.dumps(data),
        published_at=timezone.now() if published else None,
    )


def saga(data: dict, status: str) -> SagaInstance:
    return SagaInstance.objects.create(
        id=uuid.uuid4(), saga="order-fulfillment", key=data["order_id"], data=data, status=status
    )


def letter(destination: str, payload: dict | str, error: str) -> DeadLetter:
    try:
        raise ValueError(error)
    except ValueError as failure:
        return dead_letters.record(
            dead_letters.Failure(
                source="consumer:order-fulfillment",
                destination=destination,
                message_id=str(uuid.uuid4()),
                payload=payload if isinstance(payload, str) else json.dumps(payload),
                headers={},
                attempts=5,
            ),
            failure,
        )


def placed(n: int) -> dict:
    return {"order_id": str(uuid.uuid4()), "total": "5.00", "payment_token": token(n)}


def charge(n: int) -> dict:
    return {"order_id": str(uuid.uuid4()), "amount": "5.00", "token": token(n)}


@pytest.fixture
def old_copies() -> dict[str, object]:
    """One copy of a token in each place it was stored before the vault."""
    retried = letter(CHARGE_TASK, charge(7), "charge failed")
    DeadLetter.objects.filter(pk=retried.pk).update(status=DeadLetter.Status.RETRIED)
    expired = TokenVault(ttl=timedelta(seconds=-1)).deposit(order_id=uuid.uuid4(), token="tok_x")
    return {
        "unsent": outbox_row("orders.order-placed.v1", placed(1), published=False),
        "sent": outbox_row("orders.order-placed.v1", placed(2), published=True),
        "unsent_charge": outbox_row(CHARGE_TASK, charge(3), published=False),
        "running": saga(placed(4), SagaInstance.Status.RUNNING),
        "completed": saga(placed(5), SagaInstance.Status.COMPLETED),
        "pending": letter("orders.events.v1", placed(6), f"no good: {token(6)}"),
        "not_json": letter("orders.events.v1", '{"payment_token": ', "cut short"),
        "retried": retried,
        "expired": expired,
    }


def scrub(*args: str) -> str:
    out = StringIO()
    call_command("scrub_payment_tokens", *args, stdout=out)
    return out.getvalue()


def stored_text() -> str:
    rows = [
        *OutboxMessage.objects.values_list("data", flat=True),
        *SagaInstance.objects.values_list("data", flat=True),
        *DeadLetter.objects.values_list("payload", "error", "traceback"),
    ]
    return json.dumps(rows, default=str)


def test_a_dry_run_counts_and_changes_nothing(old_copies):
    before = stored_text()

    report = scrub("--dry-run")

    assert report.startswith("would scrub: 3 outbox row(s), 2 saga instance(s), 2 dead letter(s)")
    assert "(4 still to be charged" in report
    assert "1 expired vault token(s)" in report
    assert stored_text() == before
    assert VaultedToken.objects.count() == 1


def test_every_copy_loses_its_token_and_a_live_one_keeps_a_reference(old_copies):
    report = scrub()

    assert report.startswith("scrubbed: 3 outbox row(s), 2 saga instance(s), 2 dead letter(s)")
    text = stored_text()
    assert not any(token(n) in text for n in range(1, 8))
    vault = TokenVault()
    unsent = json.loads(OutboxMessage.objects.get(pk=old_copies["unsent"].pk).data)
    unsent_charge = json.loads(OutboxMessage.objects.get(pk=old_copies["unsent_charge"].pk).data)
    running = SagaInstance.objects.get(pk=old_copies["running"].pk).data
    assert vault.redeem(unsent["payment_ref"]) == token(1)
    assert vault.redeem(unsent_charge["payment_ref"]) == token(3)
    assert vault.redeem(running["payment_ref"]) == token(4)
    pending = DeadLetter.objects.get(pk=old_copies["pending"].pk)
    assert vault.redeem(json.loads(pending.payload)["payment_ref"]) == token(6)
    assert "[payment token]" in pending.error
    sent = json.loads(OutboxMessage.objects.get(pk=old_copies["sent"].pk).data)
    assert sent["payment_ref"] == ""
    assert SagaInstance.objects.get(pk=old_copies["completed"].pk).data["payment_ref"] == ""
    assert not VaultedToken.objects.filter(reference=old_copies["expired"]).exists()


def test_scrubbing_again_finds_nothing(old_copies):
    scrub()
    after = stored_text()

    report = scrub()

    assert report.startswith("scrubbed: 0 outbox row(s), 0 saga instance(s), 0 dead letter(s)")
    assert "(0 still to be charged" in report
    assert stored_text() == after
