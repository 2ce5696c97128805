"""The payment gateway port: what the Payment aggregate needs of a card processor."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True, kw_only=True)
class ChargeResult:
    charge_id: str
    amount: Decimal
    # What a payment may keep of the card: the last four digits the gateway shows.
    card_last4: str = ""


@dataclass(frozen=True, kw_only=True)
class RefundResult:
    refund_id: str


class ChargeDeclined(Exception):
    """The gateway answered no: retrying with the same card will not help.

    Not named `PaymentDeclined`: that is the event a Payment records when this happens."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RefundDeclined(Exception):
    """The gateway refused the refund (no such charge, already disputed): retrying the
    same request will not help, so a person has to look at it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GatewayUnavailable(Exception):
    """The gateway could not be reached or failed: a later try may succeed."""


class GatewayTimeout(GatewayUnavailable):
    """The call went out and no answer came back, so whether it took effect is unknown.

    Retrying with the same idempotency key is safe: a gateway never acts twice on a key."""


class PaymentGateway(Protocol):
    """Port: a card processor with Stripe-style idempotency keys.

    The same idempotency key always gives the first outcome; it never charges twice."""

    def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> ChargeResult:
        """Authorize and capture `amount` in one step.

        Raises ChargeDeclined, GatewayUnavailable or GatewayTimeout."""
        ...

    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        """The charge captured under `idempotency_key`, if any: how a caller whose
        charge is in doubt (a timeout, a crash, a void racing it) learns what happened.

        Raises GatewayUnavailable."""
        ...

    def refund(self, *, idempotency_key: str, charge_id: str) -> RefundResult:
        """Refund a captured charge in full.

        Raises RefundDeclined, GatewayUnavailable or GatewayTimeout."""
        ...
