"""The Payment aggregate: an order's one charge, captured or declined, and its refund."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from payments.domain.gateway import ChargeDeclined, PaymentGateway
from payments.events import PaymentCaptured, PaymentDeclined, PaymentRefunded, PaymentVoided
from platform_core.aggregate import Aggregate
from platform_core.errors import Conflict, InvalidCommand


class PaymentStatus(StrEnum):
    CAPTURED = "captured"
    DECLINED = "declined"
    REFUNDED = "refunded"
    VOIDED = "voided"


class InvalidPayment(InvalidCommand):
    pass


class PaymentNotCaptured(Conflict):
    pass


@dataclass(frozen=True, kw_only=True)
class PaymentState:
    status: PaymentStatus
    amount: Decimal
    charge_id: str = ""
    decline_reason: str = ""


def _now() -> datetime:
    return datetime.now(UTC)


def charge_key(order_id: UUID) -> str:
    """The idempotency key of an order's charge: the same on every retry, in any process."""
    return f"order-{order_id}-charge"


def refund_key(order_id: UUID) -> str:
    return f"order-{order_id}-refund"


class Payment(Aggregate[PaymentState]):
    """Keyed by order id: one charge per order, captured or declined, then maybe refunded.

    Idempotent: charging again does nothing once the charge is decided (captured,
    declined or refunded), refunding again does nothing once refunded. Only a captured
    payment can be refunded. A gateway failure (GatewayUnavailable, GatewayTimeout) is
    raised, recording nothing, so the command can be retried with the same key."""

    category = "payment"
    state_type = PaymentState

    @property
    def order_id(self) -> UUID:
        return UUID(self.id)

    def charge(self, *, amount: Decimal, token: str, gateway: PaymentGateway) -> None:
        if self.exists:
            return
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
            raise InvalidPayment("An amount is positive, in whole cents.")
        if not token.strip():
            raise InvalidPayment("A payment needs a card token.")
        key = charge_key(self.order_id)
        try:
            result = gateway.charge(idempotency_key=key, amount=amount, token=token)
        except ChargeDeclined as declined:
            self._record(
                PaymentDeclined(
                    order_id=self.order_id,
                    amount=amount,
                    reason=declined.reason,
                    declined_at=_now(),
                )
            )
            return
        self._record(
            PaymentCaptured(
                order_id=self.order_id,
                amount=amount,
                charge_id=result.charge_id,
                captured_at=_now(),
            )
        )

    def refund(self, *, gateway: PaymentGateway) -> None:
        """Give the money back. With nothing captured (no charge yet, or a declined one)
        the payment is voided instead, so the refund is answered and a late charge does
        nothing: a compensation may overtake the step it undoes."""
        status = self.state.status if self.exists else None
        if status in (PaymentStatus.REFUNDED, PaymentStatus.VOIDED):
            return
        if status is not PaymentStatus.CAPTURED:
            reason = "declined" if status is PaymentStatus.DECLINED else "never charged"
            self._record(PaymentVoided(order_id=self.order_id, reason=reason, voided_at=_now()))
            return
        charge_id = self.state.charge_id
        result = gateway.refund(idempotency_key=refund_key(self.order_id), charge_id=charge_id)
        self._record(
            PaymentRefunded(
                order_id=self.order_id,
                amount=self.state.amount,
                charge_id=charge_id,
                refund_id=result.refund_id,
                refunded_at=_now(),
            )
        )

    def _apply(self, event: Any) -> None:
        match event:
            case PaymentCaptured():
                self._state = PaymentState(
                    status=PaymentStatus.CAPTURED, amount=event.amount, charge_id=event.charge_id
                )
            case PaymentDeclined():
                self._state = PaymentState(
                    status=PaymentStatus.DECLINED, amount=event.amount, decline_reason=event.reason
                )
            case PaymentRefunded():
                self._state = replace(self.state, status=PaymentStatus.REFUNDED)
            case PaymentVoided():
                amount = self._state.amount if self._state else Decimal("0")
                self._state = PaymentState(status=PaymentStatus.VOIDED, amount=amount)
