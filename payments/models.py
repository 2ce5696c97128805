"""The payment token vault (see payments/vault.py) and the fake payment gateway's attempt
log (see payments/gateway.py): not the payments context's own state, which lives in the
event store."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class GatewayAttempt(models.Model):
    """One call to the fake gateway, whatever came of it."""

    operation = models.CharField(max_length=10)
    idempotency_key = models.CharField(max_length=200)
    outcome = models.CharField(max_length=20)
    # Never the token: the digits a processor shows of the card.
    card_last4 = models.CharField(max_length=4, blank=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    charge_id = models.CharField(max_length=64, blank=True)
    refund_id = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    attempted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "payments_gateway_attempts"
        indexes = [models.Index(fields=["idempotency_key"], name="payments_gw_attempt_key")]
        constraints = [
            # What makes the fake trustworthy as a witness: a key succeeds at most once,
            # even when two processes race with it.
            models.UniqueConstraint(
                fields=["operation", "idempotency_key"],
                condition=Q(outcome="succeeded"),
                name="payments_gw_one_success_per_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.idempotency_key}: {self.outcome}"


class VaultedToken(models.Model):
    """A customer's card token, kept from the order that took it until its charge's
    outcome is recorded (or it expires): the one place the token is at rest."""

    reference = models.CharField(primary_key=True, max_length=64)
    order_id = models.UUIDField()
    token = models.CharField(max_length=100)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "payment_token_vault"
        indexes = [models.Index(fields=["expires_at"], name="payment_vault_expiry_idx")]

    def __str__(self) -> str:
        return f"{self.reference} (order {self.order_id})"
