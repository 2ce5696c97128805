"""Events of the payments context: its published language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar
from uuid import UUID


@dataclass(frozen=True, kw_only=True)
class PaymentCaptured:
    event_type: ClassVar[str] = "payments.PaymentCaptured"
    order_id: UUID
    amount: Decimal
    charge_id: str
    captured_at: datetime
    # The card's last four digits, as the gateway shows them (all a payment keeps of it).
    card_last4: str = ""


@dataclass(frozen=True, kw_only=True)
class PaymentDeclined:
    event_type: ClassVar[str] = "payments.PaymentDeclined"
    order_id: UUID
    amount: Decimal
    reason: str
    declined_at: datetime


@dataclass(frozen=True, kw_only=True)
class PaymentRefunded:
    event_type: ClassVar[str] = "payments.PaymentRefunded"
    order_id: UUID
    amount: Decimal
    charge_id: str
    refund_id: str
    refunded_at: datetime


@dataclass(frozen=True, kw_only=True)
class PaymentVoided:
    """Nothing was charged (or the charge was declined) when the refund was asked for.

    Recorded so the refund is answered and so a charge arriving after it does nothing."""

    event_type: ClassVar[str] = "payments.PaymentVoided"
    order_id: UUID
    reason: str
    voided_at: datetime


@dataclass(frozen=True, kw_only=True)
class PaymentRefundFailed:
    """The gateway refused to refund the charge: the customer still has it to pay."""

    event_type: ClassVar[str] = "payments.PaymentRefundFailed"
    order_id: UUID
    charge_id: str
    reason: str
    failed_at: datetime


EVENTS = (PaymentCaptured, PaymentDeclined, PaymentRefunded, PaymentVoided, PaymentRefundFailed)


# Integration events, on the topic `payments.events.v1`, keyed by order id.
TOPIC = "payments.events.v1"


@dataclass(frozen=True, kw_only=True)
class PaymentCapturedV1:
    event_type: ClassVar[str] = "payments.payment-captured.v1"
    order_id: UUID
    amount: Decimal


@dataclass(frozen=True, kw_only=True)
class PaymentDeclinedV1:
    event_type: ClassVar[str] = "payments.payment-declined.v1"
    order_id: UUID
    reason: str


@dataclass(frozen=True, kw_only=True)
class PaymentRefundedV1:
    event_type: ClassVar[str] = "payments.payment-refunded.v1"
    order_id: UUID
    amount: Decimal


@dataclass(frozen=True, kw_only=True)
class PaymentVoidedV1:
    event_type: ClassVar[str] = "payments.payment-voided.v1"
    order_id: UUID


@dataclass(frozen=True, kw_only=True)
class PaymentRefundFailedV1:
    event_type: ClassVar[str] = "payments.payment-refund-failed.v1"
    order_id: UUID
    reason: str


INTEGRATION_EVENTS = (
    PaymentCapturedV1,
    PaymentDeclinedV1,
    PaymentRefundedV1,
    PaymentVoidedV1,
    PaymentRefundFailedV1,
)
