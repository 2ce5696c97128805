"""The Payment aggregate: an order's one charge, captured or declined, and its refund."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from payments.domain.gateway import ChargeDeclined, ChargeResult, PaymentGateway, RefundDeclined
from payments.events import (
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentRefundFailed,
    PaymentVoided,
)
from platform_core.eventsourcing.aggregate import Aggregate
from platform_core.eventsourcing.errors import Conflict, InvalidCommand


class PaymentStatus(StrEnum):
    CAPTURED = "captured"
    DECLINED = "declined"
    REFUNDED = "refunded"
    VOIDED = "voided"
    # The gateway refused the refund: the money is still charged; a person must look.
    REFUND_FAILED = "refund_failed"


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


# Why a charge whose card token is no longer held is declined.
CARD_GONE = "The card details expired before the payment was taken."


def charge_key(order_id: UUID) -> str:
    """The idempotency key of an order's charge: the same on every retry, in any process."""
    return f"order-{order_id}-charge"


def refund_key(order_id: UUID) -> str:
    return f"order-{order_id}-refund"


class Payment(Aggregate[PaymentState]):
    """Keyed by order id: one charge per order, captured or declined, then maybe refunded.

    Idempotent: charging again does nothing once the charge is decided (captured,
    declined or refunded), refunding again does nothing once refunded. A gateway failure
    (GatewayUnavailable, GatewayTimeout) is raised, recording nothing, so the command can
    be retried with the same key.

    Order-independent, because a saga may compensate a charge whose outcome it does not
    know yet: a refund that finds nothing recorded asks the gateway for the order's
    charge and refunds it if there is one, else voids the payment; a charge that finds
    the payment voided asks the gateway too, and refunds what its own call (or an
    earlier, interrupted one) captured. Either way the money charged for a voided
    payment goes back, whichever command ran first.
    """

    category = "payment"
    state_type = PaymentState

    @property
    def order_id(self) -> UUID:
        return UUID(self.id)

    def charge(self, *, amount: Decimal, token: str | None, gateway: PaymentGateway) -> None:
        """Charge the card `token` once. None for `token`: the card is no longer held (its
        token expired, or a charge whose outcome this payment lost used it), so the
        payment takes the charge the gateway holds for the order, or is declined."""
        if self.exists:
            if self.state.status is PaymentStatus.VOIDED:
                self._refund_charge_found(gateway)
            return
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
            raise InvalidPayment("An amount is positive, in whole cents.")
        if token is None:
            self._charge_without_card(amount, gateway)
            return
        if not token.strip():
            raise InvalidPayment("A payment needs a card token.")
        try:
            result = gateway.charge(
                idempotency_key=charge_key(self.order_id), amount=amount, token=token
            )
        except ChargeDeclined as declined:
            self._decline(amount, declined.reason)
            return
        self._record_captured(result)

    def _charge_without_card(self, amount: Decimal, gateway: PaymentGateway) -> None:
        found = gateway.find_charge(idempotency_key=charge_key(self.order_id))
        if found is not None:
            self._record_captured(found)
        else:
            self._decline(amount, CARD_GONE)

    def _decline(self, amount: Decimal, reason: str) -> None:
        self._record(
            PaymentDeclined(
                order_id=self.order_id, amount=amount, reason=reason, declined_at=self._now()
            )
        )

    def refund(self, *, gateway: PaymentGateway) -> None:
        """Give the money back, or void the payment when nothing was charged (a
        compensation may overtake the step it undoes)."""
        status = self.state.status if self.exists else None
        if status is PaymentStatus.REFUNDED:
            return
        if status is PaymentStatus.DECLINED:
            self._void("declined")
        elif status is PaymentStatus.VOIDED:
            self._refund_charge_found(gateway)
        elif status is None:
            found = gateway.find_charge(idempotency_key=charge_key(self.order_id))
            if found is None:
                self._void("never charged")
            else:
                self._record_captured(found)
                self._refund_captured(gateway)
        else:  # captured, or a refund the gateway refused before
            self._refund_captured(gateway)

    def _refund_charge_found(self, gateway: PaymentGateway) -> None:
        """A voided payment: refund the charge the gateway holds for it, if any (a charge
        that landed after the void, or whose caller died before recording it)."""
        found = gateway.find_charge(idempotency_key=charge_key(self.order_id))
        if found is not None:
            self._record_captured(found)
            self._refund_captured(gateway)

    def _refund_captured(self, gateway: PaymentGateway) -> None:
        charge_id = self.state.charge_id
        try:
            result = gateway.refund(idempotency_key=refund_key(self.order_id), charge_id=charge_id)
        except RefundDeclined as refused:
            self._record(
                PaymentRefundFailed(
                    order_id=self.order_id,
                    charge_id=charge_id,
                    reason=refused.reason,
                    failed_at=self._now(),
                )
            )
            return
        self._record(
            PaymentRefunded(
                order_id=self.order_id,
                amount=self.state.amount,
                charge_id=charge_id,
                refund_id=result.refund_id,
                refunded_at=self._now(),
            )
        )

    def _record_captured(self, result: ChargeResult) -> None:
        self._record(
            PaymentCaptured(
                order_id=self.order_id,
                amount=result.amount,
                charge_id=result.charge_id,
                card_last4=result.card_last4,
                captured_at=self._now(),
            )
        )

    def _void(self, reason: str) -> None:
        self._record(PaymentVoided(order_id=self.order_id, reason=reason, voided_at=self._now()))

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
            case PaymentRefundFailed():
                self._state = replace(self.state, status=PaymentStatus.REFUND_FAILED)
            case PaymentVoided():
                amount = self._state.amount if self._state else Decimal("0")
                self._state = PaymentState(status=PaymentStatus.VOIDED, amount=amount)
            case _:
                self._unknown(event)
